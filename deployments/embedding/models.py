"""The tenant's model as the service loads it: which backend, tuned for queries or for bulk, and
what one embedding call returns. No Ray: the Embedder deployment, the Ingress's query encoder,
the benchmark and the tests all load the model through here."""

import os
from dataclasses import dataclass

from deployments.core.config import Settings, onnx_unsupported
from deployments.core.errors import ConfigError
from deployments.core.types import Vectors
from deployments.embedding.backends import TOKEN_BUDGET, EmbeddingBackend, OnnxBackend, SentenceTransformerBackend
from deployments.embedding.onnx_export import cached_onnx_path, export_onnx, quantize_onnx
from deployments.embedding.tokens import truncated_flags


@dataclass
class Embedded:
    vectors: Vectors  # one unit-length row per text
    truncated: list[bool]  # True where the text was longer than the model's window


def embed_texts(backend: EmbeddingBackend, texts: list[str]) -> Embedded:
    return Embedded(backend.encode(texts), truncated_flags(backend, texts))


# Sub-batches of documents embedded at once, at most (one per core up to this).
MAX_PARALLEL_BATCHES = 4
# Texts in one call to `Embedder.embed` and in one model run, at most: callers slice bigger sets.
# Small runs finish one request at a time, so concurrent imports reach the store one by one
# rather than together (a chromadb write holds the store's GIL, README: Performance), and a
# request of one document never waits behind another request's thousand.
MAX_TEXTS_PER_CALL = 64


def backend_choice(settings: Settings, gpu: bool = False) -> str:
    """The backend EMBED_BACKEND names; `auto` is ONNX on CPU and torch on a GPU (or for a model ONNX cannot run)."""
    if settings.embed_backend != "auto":
        return settings.embed_backend
    return "torch" if gpu or onnx_unsupported(settings.model_path) else "onnx"


def cores() -> int:
    """The cores this process may run on, at most MAX_PARALLEL_BATCHES (each batch in flight holds its
    own activations: a container given 2 cores of a 64-core host must not run 64)."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_PARALLEL_BATCHES))


def load_backend(settings: Settings, gpu: bool = False) -> EmbeddingBackend:
    """The tenant's model on the backend `backend_choice` picks. On ONNX Runtime every model run
    has one thread, and a call's runs go on one thread per core: a run split over two threads
    answers a lone query sooner (7.1 against 9.0 ms here) but costs 11.7 CPU ms against 9.0, and
    on a small machine under load the CPU is what bounds searches per second (README: Performance)."""
    choice = backend_choice(settings, gpu)
    backend: EmbeddingBackend
    if choice.startswith("onnx"):
        onnx_path = export_onnx(settings.model_path, cached_onnx_path(settings.model_path, settings.onnx_cache_dir))
        budget = TOKEN_BUDGET
        if choice == "onnx-int8":
            onnx_path = quantize_onnx(onnx_path)
            # Its activations are quantised as it runs, with one scale for the whole run, so a text
            # shared a run would get a vector that depends on the others in it (SciFact queries alone
            # against 8 a run: cosine down to 0.989). Each text runs alone: a budget of 0 tokens.
            budget = 0
        backend = OnnxBackend(
            settings.model_path, onnx_path, token_budget=budget, threads=1, parallel=cores(), kind=choice
        )
    else:
        backend = SentenceTransformerBackend(settings.model_path)
    if backend.dimension != settings.dimension:
        raise ConfigError(
            f"DIMENSION is {settings.dimension} but the loaded model produces {backend.dimension}-dimensional vectors"
        )
    return backend
