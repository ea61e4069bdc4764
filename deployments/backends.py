"""Embedding backends behind one small protocol: the real sentence-transformers model and a fast,
deterministic fake for unit and contract tests."""

import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class EmbeddingBackend(Protocol):
    name: str
    dimension: int
    max_tokens: int  # the model's window; longer texts are embedded from their start only

    def encode(self, texts: list[str]) -> Vectors:
        """Unit-length float32 vectors, one row per text."""
        ...

    def token_counts(self, texts: list[str]) -> list[int]:
        """How many tokens each text has before truncation."""
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

    def encode(self, texts: list[str]) -> Vectors:
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    def token_counts(self, texts: list[str]) -> list[int]:
        encoded = self.model.tokenizer(texts, add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]


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
