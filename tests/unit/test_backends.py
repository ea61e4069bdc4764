import asyncio

import numpy as np
import onnx
import pytest
from transformers import AutoTokenizer

from deployments.core.config import load_settings, model_window, resolve_model_path
from deployments.core.types import Vectors
from deployments.embedding.backends import HashingBackend, OnnxBackend, SentenceTransformerBackend, token_budget_runs
from deployments.embedding.models import embed_texts, load_backend
from deployments.embedding.onnx_export import (
    cached_onnx_path,
    export_model,
    export_onnx,
    kept_in_fp32,
    packs_texts,
    quantize_onnx,
)
from deployments.embedding.query_encoders import query_encoder
from deployments.embedding.tokens import FastTokenizer, TransformersTokenizer, load_tokenizer, truncated_flags


@pytest.fixture(scope="module")
def model():
    return SentenceTransformerBackend(resolve_model_path("all-MiniLM-L6-v2"))


def test_real_model_vectors_are_unit_length_and_meaningful(model):
    assert (model.dimension, model.max_tokens) == (384, 256)
    vectors = model.encode(["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Interest rates rose again."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_truncation_is_reported(model):
    embedded = embed_texts(model, ["short text", "word " * 400])
    assert embedded.truncated == [False, True]
    assert embedded.vectors.shape == (2, 384)


def test_fake_backend_is_deterministic_and_unit_length():
    fake = HashingBackend(dimension=64)
    first, again = fake.encode(["apples and pears", ""]), fake.encode(["apples and pears", ""])
    assert np.array_equal(first, again)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert fake.token_counts(["one two three"]) == [3]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, model):
    model_path = resolve_model_path("all-MiniLM-L6-v2")
    target = export_onnx(model_path, cached_onnx_path(model_path, tmp_path_factory.mktemp("cache")))
    return OnnxBackend(model_path, target)


def test_onnx_backend_matches_torch(model, onnx_model):
    texts = ["A cat sleeps on the sofa.", "Interest rates rose again.", "word " * 400, "x", "Ünïcode ✓ text"]
    torch_vectors, onnx_vectors = model.encode(texts), onnx_model.encode(texts)
    assert onnx_vectors.shape == torch_vectors.shape and onnx_vectors.dtype == np.float32
    assert np.min(np.sum(torch_vectors * onnx_vectors, axis=1)) > 1 - 1e-5
    assert onnx_model.token_counts(texts) == model.token_counts(texts)
    assert (onnx_model.dimension, onnx_model.max_tokens) == (384, 256)


def test_runs_of_any_size_in_parallel_give_the_same_vectors(onnx_model, model):
    model_path = resolve_model_path("all-MiniLM-L6-v2")
    parallel = OnnxBackend(model_path, onnx_model.onnx_path, token_budget=24, threads=1, parallel=2)
    whole = OnnxBackend(model_path, onnx_model.onnx_path, token_budget=100_000)
    texts = [f"text number {n} " * (n % 7 + 1) for n in range(11)] + ["word " * 400]  # runs of unequal lengths
    assert len(token_budget_runs([min(n, 256) for n in parallel.token_counts(texts)], 24)) > 4  # runs of 1-3 texts
    one_by_one = np.concatenate([onnx_model.encode([text]) for text in texts])
    for vectors in (parallel.encode(texts), whole.encode(texts), model.encode(texts)):
        assert np.min(np.sum(vectors * one_by_one, axis=1)) > 1 - 1e-5
    assert parallel.encode([]).shape == (0, 384)


def test_token_budget_runs_fill_up_to_the_budget_from_the_shortest():
    assert token_budget_runs([10, 3, 200, 4, 300], budget=16) == [[1, 3], [0], [2], [4]]
    assert token_budget_runs([5, 5, 5, 5], budget=20) == [[0, 1, 2, 3]]
    assert token_budget_runs([], budget=16) == []
    # Packed, a run costs its texts' tokens; padded, every text costs the longest's.
    assert token_budget_runs([5, 6, 9], budget=20) == [[0, 1, 2]]
    assert token_budget_runs([5, 6, 9], budget=20, packed=False) == [[0, 1], [2]]


def test_bert_packs_texts_and_roberta_does_not():
    """Packed into one line, each text must have the hidden states it has alone. RoBERTa numbers its
    positions from after the padding token's id, so packing with positions from 0 would change its
    vectors: such a model is exported for padded lines instead (packs_texts decides at export)."""
    import torch
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)  # small models of random weights: the layout is what matters
    bert = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    roberta = RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    for config in (bert, roberta):
        config._attn_implementation = "eager"  # as the export loads a model
    assert packs_texts(BertModel(bert).eval())
    assert not packs_texts(RobertaModel(roberta).eval())


def test_padded_export_gives_the_vectors_of_the_packed_one(onnx_model, tmp_path):
    from transformers import AutoModel

    model_path = resolve_model_path("all-MiniLM-L6-v2")
    model = AutoModel.from_pretrained(str(model_path), local_files_only=True, attn_implementation="eager").eval()
    export_model(model, tmp_path / "padded.onnx", packed=False)
    padded = OnnxBackend(model_path, tmp_path / "padded.onnx")
    texts = [f"text number {n} " * (n % 7 + 1) for n in range(11)] + ["word " * 400, "x"]
    assert (onnx_model._packed, padded._packed) == (True, False)
    assert len(token_budget_runs(onnx_model.token_counts(texts))) < len(texts)  # several texts a line
    assert np.min(np.sum(padded.encode(texts) * onnx_model.encode(texts), axis=1)) > 1 - 1e-5


def test_int8_model_is_the_same_model_nearly(onnx_model):
    model_path = resolve_model_path("all-MiniLM-L6-v2")
    int8 = OnnxBackend(model_path, quantize_onnx(onnx_model.onnx_path), kind="onnx-int8")
    texts = ["A cat sleeps on the sofa.", "Interest rates rose again.", "word " * 400]
    assert int8.name.startswith("onnx-int8:")
    assert np.min(np.sum(int8.encode(texts) * onnx_model.encode(texts), axis=1)) > 0.97
    # The matrices but three (kept_in_fp32, 7 MB) are int8, a quarter of their size; the token
    # embedding table, about 47 MB, stays fp32.
    assert quantize_onnx(onnx_model.onnx_path).stat().st_size < 0.75 * onnx_model.onnx_path.stat().st_size


def test_int8_model_keeps_the_first_half_of_the_down_projections_in_fp32(onnx_model):
    """kept_in_fp32: the feed-forward down-projections of layers 0-2 of MiniLM's six stay plain
    matrix products; every other product with a weight reads int8 weights."""
    quantized = onnx.load(str(quantize_onnx(onnx_model.onnx_path)), load_external_data=False)
    weights = {weight.name for weight in quantized.graph.initializer}
    fp32 = {node.name for node in quantized.graph.node if node.op_type == "MatMul" and node.input[1] in weights}
    assert fp32 == {f"/model/encoder/layer.{layer}/output/dense/MatMul" for layer in range(3)}
    assert kept_in_fp32(onnx_model.onnx_path) == sorted(fp32)
    assert sum(node.op_type == "MatMulInteger" for node in quantized.graph.node) == 6 * 6 - 3


def test_an_int8_text_gets_one_vector_whatever_it_is_embedded_with(onnx_model_cache):
    """The int8 model's activations are scaled once per model run: each text runs alone, so its
    vector is the same alone or among others (in shared runs SciFact queries moved to cosine 0.989)."""
    int8 = load_backend(load_settings(_env_file=None, embed_backend="onnx-int8", model_cache_dir=onnx_model_cache))
    texts = ["A cat sleeps on the sofa.", "Interest rates rose again.", "x", "word " * 400, "What causes the tides?"]
    alone = np.concatenate([int8.encode([text]) for text in texts])
    assert np.array_equal(int8.encode(texts), alone)
    assert np.array_equal(int8.encode(texts[::-1]), alone[::-1])


def test_query_backend_embeds_the_search_queries_and_embed_backend_the_documents(onnx_model_cache):
    """QUERY_BACKEND=onnx-int8 beside EMBED_BACKEND=onnx: the Ingress's query encoder (the one
    searches use) runs the int8 model; documents are still the fp32 model's."""
    settings = load_settings(
        _env_file=None, embed_backend="onnx", query_backend="onnx-int8", model_cache_dir=onnx_model_cache
    )

    class NoEmbedder:
        async def embed_queries(self, texts: list[str]) -> Vectors:
            raise AssertionError("queries are embedded in the Ingress")

    encoder = query_encoder(settings, NoEmbedder(), "ingress")
    queries = ["What causes the tides?", "red apples"]
    vectors = asyncio.run(encoder.embed_queries(queries))
    int8, fp32 = load_backend(settings.for_queries()), load_backend(settings)
    assert int8.name.startswith("onnx-int8:") and fp32.name.startswith("onnx:")
    assert np.array_equal(vectors, int8.encode(queries))
    assert not np.allclose(vectors, fp32.encode(queries), atol=1e-4)
    assert np.all(np.sum(vectors * fp32.encode(queries), axis=1) > 0.98)  # the same model, in int8


def test_onnx_export_is_cached(tmp_path):
    model_path = resolve_model_path("all-MiniLM-L6-v2")
    target = cached_onnx_path(model_path, tmp_path)
    assert export_onnx(model_path, target) == target
    first = target.stat().st_mtime_ns
    assert export_onnx(model_path, target) == target
    assert target.stat().st_mtime_ns == first
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]  # no partial files left


def test_the_ingress_tokenizer_counts_and_cuts_as_the_models_own(model):
    """The Ingress flags truncation and cuts chunks with the tokenizer alone (no model): its answers
    must be the model's, for both the fast tokenizer and the transformers one."""
    model_path = resolve_model_path("all-MiniLM-L6-v2")
    texts = ["A cat sleeps on the sofa.", "word " * 400, "", "Ünïcode ✓ text, with punctuation!"]
    fast = load_tokenizer(model_path)
    assert isinstance(fast, FastTokenizer)
    slow = TransformersTokenizer(AutoTokenizer.from_pretrained(str(model_path)), model_window(model_path))
    for tokenizer in (fast, slow):
        assert tokenizer.max_tokens == model.max_tokens == 256
        assert tokenizer.token_counts(texts) == model.token_counts(texts)
        assert tokenizer.token_spans(texts) == model.token_spans(texts)
        assert truncated_flags(tokenizer, texts) == embed_texts(model, texts).truncated == [False, True, False, False]
