"""Cutting long texts into chunks (deployments.embedding.chunking) with the hashing and the real tokenizer."""

import itertools

import pytest

from deployments.core.config import load_settings
from deployments.core.errors import ConfigError
from deployments.embedding.backends import HashingBackend
from deployments.embedding.chunking import chunk_spans
from deployments.embedding.tokens import chunk_texts


def words(count: int) -> str:
    return " ".join(f"w{n}" for n in range(count))


def test_a_text_that_fits_is_one_chunk_the_whole_text():
    assert chunk_texts(HashingBackend(), [words(10), ""], 20, 5) == [[(0, len(words(10)))], [(0, 0)]]


@pytest.mark.parametrize(("count", "size", "overlap"), [(21, 20, 5), (100, 20, 5), (1000, 200, 40), (57, 10, 0)])
def test_chunks_cover_the_text_with_the_overlap_asked(count, size, overlap):
    text = "  " + words(count) + " ."
    (spans,) = chunk_texts(HashingBackend(), [text], size, overlap)
    tokens = HashingBackend().token_spans([text])[0]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)  # nothing before the first or after the last
    for start, end in spans:
        inside = [t for t in tokens if start <= t[0] and t[1] <= end]
        assert 0 < len(inside) <= size
    for (_, end), (start, _) in itertools.pairwise(spans):
        shared = [t for t in tokens if start <= t[0] and t[1] <= end]
        assert len(shared) == overlap
    assert len(spans) == 1 + -(-(count - size) // (size - overlap))


def test_spans_follow_the_real_tokenizer_offsets(onnx_model_cache):
    from deployments.embedding.models import load_backend

    backend = load_backend(load_settings(_env_file=None, embed_backend="onnx", model_cache_dir=onnx_model_cache))
    text = "Résumé: " + "The mitochondria produce ATP through oxidative phosphorylation. " * 60
    (spans,) = chunk_texts(backend, [text], 200, 40)
    assert len(spans) > 3 and spans[-1][1] == len(text)
    counts = backend.token_counts([text[start:end] for start, end in spans])
    assert all(count <= 200 + 2 for count in counts)  # each chunk fits the window with [CLS] and [SEP]


def test_the_chunk_settings_must_fit_the_model():
    with pytest.raises(ConfigError, match="CHUNK_TOKENS"):
        load_settings(_env_file=None, chunk_tokens=300)
    with pytest.raises(ConfigError, match="CHUNK_OVERLAP_TOKENS"):
        load_settings(_env_file=None, chunk_tokens=100, chunk_overlap_tokens=100)
    settings = load_settings(_env_file=None, plan="pro")
    assert (settings.chunk_size, settings.chunk_overlap) == (200, 40)


def test_chunk_spans_directly():
    tokens = [(i * 3, i * 3 + 2) for i in range(10)]
    assert chunk_spans(tokens, 30, 4, 2) == [(0, 11), (6, 17), (12, 23), (18, 30)]
