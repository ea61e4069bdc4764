"""The Ray Serve application: `serve run serve_config.yaml` calls `build_app`."""

from ray.serve import Application, Deployment

from deployments.config import load_settings
from deployments.embedder import Embedder
from deployments.ingress import Ingress
from deployments.store import ChromaStore


def build_app(args: dict[str, str] | None = None) -> Application:
    """Read the tenant's settings once and hand them to every deployment.

    `args` (from serve_config.yaml) are unused: a tenant's settings come from the environment only.
    """
    settings = load_settings()
    embedder = _deployment(Embedder).bind(settings)
    # The store holds a handle to the Embedder too: it re-embeds stored texts to rebuild a broken index.
    return _deployment(Ingress).bind(settings, embedder, _deployment(ChromaStore).bind(settings, embedder))


def _deployment(decorated: object) -> Deployment:
    """`@serve.deployment` turns a class into a Deployment; mypy cannot see through class decorators."""
    assert isinstance(decorated, Deployment)
    return decorated
