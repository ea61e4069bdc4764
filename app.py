"""The Ray Serve application: `serve run serve_config.yaml` calls `build_app`."""

from pydantic import BaseModel, ConfigDict
from ray.serve import Application, Deployment

from deployments.core.config import load_settings
from deployments.embedder import Embedder
from deployments.embedding.query_encoders import QueryEmbedding
from deployments.ingress import Ingress
from deployments.store import ChromaStore


class GraphArgs(BaseModel):
    """The graph's shape beyond each deployment's options: `args:` in serve_config.yaml. Never a
    tenant setting (those come from the environment only)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt argument stops the deploy, not silently ignored

    # Where search queries are embedded: "ingress" (a query-only copy of the model in the Ingress,
    # one Serve call per search) or "embedder" (the Embedder's query lane: GPU tenants).
    query_embedding: QueryEmbedding = "ingress"


def build_app(args: dict[str, str] | None = None) -> Application:
    """Read the tenant's settings once and hand them to every deployment."""
    graph = GraphArgs.model_validate(args or {})
    settings = load_settings()
    embedder = _deployment(Embedder).bind(settings, graph.query_embedding == "embedder")
    # The store holds a handle to the Embedder too: it re-embeds stored texts to rebuild a broken index.
    store = _deployment(ChromaStore).bind(settings, embedder)
    return _deployment(Ingress).bind(settings, embedder, store, graph.query_embedding)


def _deployment(decorated: object) -> Deployment:
    """`@serve.deployment` turns a class into a Deployment; mypy cannot see through class decorators."""
    assert isinstance(decorated, Deployment)
    return decorated
