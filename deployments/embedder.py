"""The Embedder deployment: the tenant's model, loaded once per replica, fed by dynamic batching."""

import asyncio
from dataclasses import dataclass
from typing import Any

from ray import serve

from deployments.backends import EmbeddingBackend, SentenceTransformerBackend, Vectors
from deployments.config import Settings
from deployments.errors import ConfigError


@dataclass
class Embedded:
    vectors: Vectors  # one unit-length row per text
    truncated: list[bool]  # True where the text was longer than the model's window


def embed_texts(backend: EmbeddingBackend, texts: list[str]) -> Embedded:
    counts = backend.token_counts(texts)
    return Embedded(backend.encode(texts), [count > backend.max_tokens for count in counts])


def load_backend(settings: Settings) -> EmbeddingBackend:
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
        self.backend = load_backend(settings)

    # Each call carries the texts of one HTTP request; concurrent calls are embedded as one batch.
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def embed(self, requests: list[list[str]]) -> list[Embedded]:
        texts = [text for request in requests for text in request]
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

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend.name,
            "dimension": self.backend.dimension,
            "max_tokens": self.backend.max_tokens,
        }
