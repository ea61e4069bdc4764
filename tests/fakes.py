"""In-process stand-ins for the deployment handles, shared by contract and unit tests."""

from types import SimpleNamespace
from typing import Any

from deployments.core.types import Vectors
from deployments.embedding.backends import HashingBackend
from deployments.embedding.models import Embedded, embed_texts


class LocalHandle:
    """`handle.method.remote(...)` for a plain object, as a DeploymentHandle offers it."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.called: list[str] = []  # the methods called through this handle, in order

    def __getattr__(self, name: str) -> SimpleNamespace:
        method = getattr(self._target, name)
        self.called.append(name)

        async def remote(*args: Any) -> Any:
            result = method(*args)
            return await result if hasattr(result, "__await__") else result

        return SimpleNamespace(remote=remote)


class FakeEmbedder:
    def __init__(self, max_tokens: int = 256) -> None:
        self.backend = HashingBackend(384, max_tokens)
        self.encoded: list[str] = []  # every text the model was run on, in order

    async def embed(self, texts: list[str]) -> Embedded:
        self.encoded.extend(texts)
        return embed_texts(self.backend, texts)

    async def embed_queries(self, texts: list[str]) -> Vectors:
        self.encoded.extend(texts)
        return self.backend.encode(texts)

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend.name}
