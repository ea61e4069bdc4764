"""Embedding backends behind one small protocol: the real sentence-transformers model and a fast,
deterministic fake for unit and contract tests."""

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from deployments.core.types import Span, Vectors
from deployments.embedding.tokens import FastTokenizer, Tokenizing, TransformersTokenizer


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


class OnnxBackend:
    """The same model exported to ONNX, run by onnxruntime on the CPU: about 3x faster than torch for a
    single query and without torch in the process. Vectors match the torch backend to 1e-6 cosine."""

    def __init__(
        self,
        model_path: Path,
        onnx_path: Path,
        batch_size: int = 32,
        threads: int = 0,
        parallel: int = 1,
        kind: str = "onnx",
    ) -> None:
        """`threads`: ONNX Runtime's threads for one run (0: one per core), what a lone query wants;
        `parallel`: how many sub-batches of `batch_size` run at once, on threads of their own, what
        bulk embedding wants (with `threads=1`: 1.26x the passages per second of one run on two
        threads here, and a thread the OS holds back delays only its own sub-batch)."""
        import onnxruntime
        from tokenizers import Tokenizer

        self.name = f"{kind}:{model_path.name}@cpu"
        self.onnx_path = onnx_path
        self._tokens = FastTokenizer(model_path)  # untruncated, for counts and spans
        self.max_tokens = self._tokens.max_tokens
        self.batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))  # truncated and padded, for runs
        self._tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: one per core
        # Idle worker threads would otherwise spin for work, stealing the cores that the rest of
        # the service (HTTP, the store) needs on a small machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        # ONNX Runtime's memory arena keeps its largest allocation for the process's life: one batch
        # of long passages would pin ~450 MB. Shrinking it after each run returns that memory and
        # costs about 5% on large batches, nothing measurable on queries.
        self._run_options = onnxruntime.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        # Made on first use, by the thread that encodes: its threads inherit that thread's priority.
        self._workers = ThreadPoolExecutor(parallel, "onnx-batch") if parallel > 1 else None
        self.dimension = int(self._encode_batch(["dimension probe"]).shape[1])

    def encode(self, texts: list[str]) -> Vectors:
        # Sorted by length so each sub-batch pads little, as sentence-transformers does.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        run = partial(self._encode_rows, texts)
        pooled = self._workers.map(run, batches) if self._workers and len(batches) > 1 else map(run, batches)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows, batch_vectors in zip(batches, pooled, strict=True):
            vectors[rows] = batch_vectors
        return vectors

    def _encode_rows(self, texts: list[str], rows: list[int]) -> Vectors:
        return self._encode_batch([texts[i] for i in rows])

    def _encode_batch(self, texts: list[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = self._session.run(None, feeds, self._run_options)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)  # mean pooling
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
