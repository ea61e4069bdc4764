"""The Embedder deployment: the tenant's model, loaded once per replica, fed by dynamic batching."""

import asyncio
from dataclasses import dataclass
from typing import Any

from ray import serve

from deployments import metrics
from deployments.backends import EmbeddingBackend, OnnxBackend, SentenceTransformerBackend, Vectors
from deployments.chunking import Span, chunk_spans
from deployments.config import Settings, onnx_unsupported
from deployments.errors import ConfigError
from deployments.onnx_export import cached_onnx_path, export_onnx


@dataclass
class Embedded:
    vectors: Vectors  # one unit-length row per text
    truncated: list[bool]  # True where the text was longer than the model's window


def truncated_flags(backend: EmbeddingBackend, texts: list[str]) -> list[bool]:
    """Which texts are longer than the model's window (the tokenizer only, no model)."""
    return [count > backend.max_tokens for count in backend.token_counts(texts)]


def chunk_texts(backend: EmbeddingBackend, texts: list[str], size: int, overlap: int) -> list[list[Span]]:
    return [
        chunk_spans(tokens, len(text), size, overlap)
        for text, tokens in zip(texts, backend.token_spans(texts), strict=True)
    ]


def embed_texts(backend: EmbeddingBackend, texts: list[str]) -> Embedded:
    return Embedded(backend.encode(texts), truncated_flags(backend, texts))


def load_backend(settings: Settings, gpu: bool = False) -> EmbeddingBackend:
    """The tenant's model on the backend EMBED_BACKEND names; `auto` is ONNX on CPU and torch on a GPU."""
    choice = settings.embed_backend
    if choice == "auto":
        choice = "torch" if gpu or onnx_unsupported(settings.model_path) else "onnx"
    backend: EmbeddingBackend
    if choice == "onnx":
        onnx_path = export_onnx(settings.model_path, cached_onnx_path(settings.model_path, settings.onnx_cache_dir))
        backend = OnnxBackend(settings.model_path, onnx_path)
    else:
        backend = SentenceTransformerBackend(settings.model_path)
    if backend.dimension != settings.dimension:
        raise ConfigError(
            f"DIMENSION is {settings.dimension} but the loaded model produces {backend.dimension}-dimensional vectors"
        )
    return backend


# Shape defaults only: replicas, CPUs, GPUs and autoscaling are set in serve_config.yaml.
@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64)
class Embedder:
    def __init__(self, settings: Settings) -> None:
        import ray

        self.backend = load_backend(settings, gpu=bool(ray.get_gpu_ids()))

    # Each call carries the texts of one HTTP request; concurrent calls are embedded as one batch.
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def embed(self, requests: list[list[str]]) -> list[Embedded]:
        texts = [text for request in requests for text in request]
        metrics.embed_batch.observe(len(texts))
        # In a thread, so the replica keeps accepting (and queueing) calls while the model works.
        embedded = await asyncio.to_thread(embed_texts, self.backend, texts)
        results, start = [], 0
        for request in requests:
            end = start + len(request)
            results.append(Embedded(embedded.vectors[start:end], embedded.truncated[start:end]))
            start = end
        return results

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Tune batching live from serve_config.yaml's user_config."""
        if "max_batch_size" in user_config:
            self.embed.set_max_batch_size(int(user_config["max_batch_size"]))  # type: ignore[attr-defined]
        if "batch_wait_timeout_s" in user_config:
            self.embed.set_batch_wait_timeout_s(float(user_config["batch_wait_timeout_s"]))  # type: ignore[attr-defined]

    def truncated(self, texts: list[str]) -> list[bool]:
        return truncated_flags(self.backend, texts)

    def chunk_spans(self, texts: list[str], size: int, overlap: int) -> list[list[Span]]:
        """Where each text's chunks start and end (the tokenizer only, no model)."""
        return chunk_texts(self.backend, texts, size, overlap)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend.name,
            "dimension": self.backend.dimension,
            "max_tokens": self.backend.max_tokens,
        }
