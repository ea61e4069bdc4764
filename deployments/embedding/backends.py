"""Embedding backends behind one small protocol: the real sentence-transformers model and a fast,
deterministic fake for unit and contract tests."""

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from deployments.core.types import Span, Vectors
from deployments.embedding.onnx_export import PACKED_INPUTS
from deployments.embedding.tokens import FastTokenizer, Tokenizing, TransformersTokenizer

if TYPE_CHECKING:  # the library itself is imported where a model is loaded
    from tokenizers import Encoding


class EmbeddingBackend(Tokenizing, Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str]) -> Vectors:
        """Unit-length float32 vectors, one row per text."""
        ...


class SentenceTransformerBackend:
    """The tenant's model through sentence-transformers, on the GPU when one is visible."""

    def __init__(self, model_path: Path, device: str | None = None, batch_size: int = 32) -> None:
        # The model is on disk: make sure nothing behind sentence-transformers tries the hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = SentenceTransformer(str(model_path), device=self.device, local_files_only=True)
        if self.device.startswith("cuda"):
            self.model.half()  # fp16 halves GPU memory and time; encode() still returns float32
        self.name = f"sentence-transformers:{model_path.name}@{self.device}"
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model at {model_path} does not report its embedding size")
        self.dimension = int(dimension)
        if self.model.max_seq_length is None:
            raise ValueError(f"model at {model_path} does not report its window (max_seq_length)")
        self.max_tokens = int(self.model.max_seq_length)
        self.batch_size = batch_size
        self._tokens = TransformersTokenizer(self.model.tokenizer, self.max_tokens)

    def encode(self, texts: list[str]) -> Vectors:
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    def token_counts(self, texts: list[str]) -> list[int]:
        return self._tokens.token_counts(texts)

    def token_spans(self, texts: list[str]) -> list[list[Span]]:
        return self._tokens.token_spans(texts)


# Tokens in one ONNX Runtime run, at most (padding included, where the model runs padded rows).
# On a CPU a small run embeds more texts per second than a big one (its activations stay in the
# core's caches): SciFact passages (cut at 256 tokens) one a run, on two threads, 28.7/s against
# 17.2/s in runs of 32 (2026-12-05, `make bench-backends`); queries of about 23 tokens packed ten or
# so a run cost 0.8x the CPU of each alone (a run's fixed cost shared; README: Performance).
TOKEN_BUDGET = 256


def token_budget_runs(lengths: list[int], budget: int = TOKEN_BUDGET, packed: bool = True) -> list[list[int]]:
    """The texts of each run: sorted by length, as many in a run as fit `budget` tokens, at least
    one. Packed into one row, a run costs its texts' tokens; padded, its longest text's length for
    every text (sorted, so each pads little)."""
    runs: list[list[int]] = []
    for row in sorted(range(len(lengths)), key=lengths.__getitem__):
        if runs:
            run = runs[-1]  # sorted: this row is its longest yet
            cost = sum(lengths[r] for r in run) + lengths[row] if packed else (len(run) + 1) * lengths[row]
            if cost <= budget:
                run.append(row)
                continue
        runs.append([row])
    return runs


class OnnxBackend:
    """The same model exported to ONNX, run by onnxruntime on the CPU: about 3x faster than torch for a
    single query and without torch in the process. Vectors match the torch backend to 1e-6 cosine."""

    def __init__(
        self,
        model_path: Path,
        onnx_path: Path,
        token_budget: int = TOKEN_BUDGET,
        threads: int = 0,
        parallel: int = 1,
        kind: str = "onnx",
    ) -> None:
        """`token_budget`: tokens in one run, at most (token_budget_runs); `threads`: ONNX
        Runtime's threads for one run (0: one per core: a lone query's answer comes sooner, at a
        higher CPU cost; the service runs 1, models.load_backend says why); `parallel`: how many
        runs go at once, on threads of their own (with `threads=1`: a thread the OS holds back
        delays only its own run, and each thread takes the next run when done, so none idles
        while another finishes a call's share)."""
        import onnxruntime
        from tokenizers import Tokenizer

        self.name = f"{kind}:{model_path.name}@cpu"
        self.onnx_path = onnx_path
        self._tokens = FastTokenizer(model_path)  # untruncated, for counts and spans
        self.max_tokens = self._tokens.max_tokens
        self.token_budget = token_budget
        self._tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))  # truncated, for runs
        self._tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer.no_padding()  # each run lays out its own lines (_run)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        # Idle worker threads would otherwise spin for work, stealing the cores that the rest of
        # the service (HTTP, the store) needs on a small machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._packed = [given.name for given in self._session.get_inputs()] == PACKED_INPUTS  # onnx_export
        # ONNX Runtime's memory arena keeps its largest allocation for the process's life: one batch
        # of long passages would pin ~450 MB. Shrinking it after each run returns that memory and
        # costs about 5% on large batches, nothing measurable on queries.
        self._run_options = onnxruntime.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        # Made on first use, by the thread that encodes: its threads inherit that thread's priority.
        self._workers = ThreadPoolExecutor(parallel, "onnx-batch") if parallel > 1 else None
        self.dimension = int(self._run(self._tokenizer.encode_batch(["dimension probe"]), [0]).shape[1])

    def encode(self, texts: list[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(texts)
        runs = token_budget_runs([len(encoding.ids) for encoding in encodings], self.token_budget, self._packed)
        run = partial(self._run, encodings)
        pooled = self._workers.map(run, runs) if self._workers and len(runs) > 1 else map(run, runs)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows, run_vectors in zip(runs, pooled, strict=True):
            vectors[rows] = run_vectors
        return vectors

    def _run(self, encodings: list["Encoding"], rows: list[int]) -> Vectors:
        """One model run over the texts `rows` of `encodings`: packed one after another into lines
        where the export takes packed lines (each text attends to its own tokens only, so there is
        no padding to compute; a run within the token budget is one line), else a line each; lines
        padded to the longest. The padding is masked out of attention and pooling, so its token ids
        and positions can be anything: 0."""
        texts = [encodings[row].ids for row in rows]
        lengths = [len(ids) for ids in texts]
        # Where each text's first token goes: (line, column). Packed, texts follow one another in
        # lines of at most the model's window (a line's attention costs the square of its length).
        places: list[tuple[int, int]] = []
        line, column = -1, self.max_tokens
        for n in lengths:
            if not self._packed or column + n > self.max_tokens:
                line, column = line + 1, 0
            places.append((line, column))
            column += n
        shape = (places[-1][0] + 1, max(column + n for (_, column), n in zip(places, lengths, strict=True)))
        input_ids, positions, segments = (np.zeros(shape, dtype=np.int64) for _ in range(3))
        for segment, ((line, column), ids) in enumerate(zip(places, texts, strict=True), start=1):
            span = slice(column, column + len(ids))
            input_ids[line, span], positions[line, span], segments[line, span] = ids, np.arange(len(ids)), segment
        if self._packed:
            feeds = {"input_ids": input_ids, "position_ids": positions, "segment_ids": segments}
        else:
            mask = (segments > 0).astype(np.int64)
            feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = self._session.run(None, feeds, self._run_options)[0]
        pooled = np.stack(  # mean pooling, over each text's own tokens
            [hidden[line, column : column + n].mean(axis=0) for (line, column), n in zip(places, lengths, strict=True)]
        )
        unit: Vectors = (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)
        return unit

    def token_counts(self, texts: list[str]) -> list[int]:
        return self._tokens.token_counts(texts)

    def token_spans(self, texts: list[str]) -> list[list[Span]]:
        return self._tokens.token_spans(texts)


_WORD = re.compile(r"\w+")


class HashingBackend:
    """Bag-of-words hashed into `dimension` buckets: texts sharing words are close. Deterministic,
    instant and torch-free, for tests that exercise everything but the model."""

    name = "hashing-fake"

    def __init__(self, dimension: int = 384, max_tokens: int = 256) -> None:
        self.dimension = dimension
        self.max_tokens = max_tokens

    def encode(self, texts: list[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())[: self.max_tokens] or [""]
            for word in words:
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                vectors[row, bucket % self.dimension] += 1.0
        unit: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(_WORD.findall(text)) for text in texts]

    def token_spans(self, texts: list[str]) -> list[list[Span]]:
        return [[match.span() for match in _WORD.finditer(text)] for text in texts]
