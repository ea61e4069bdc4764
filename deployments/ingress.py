"""The Ingress deployment: serves the REST API and routes to the Embedder and the ChromaStore."""

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.api import create_api
from deployments.config import Settings
from deployments.gateway import Gateway


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=128)
@serve.ingress()
class Ingress:
    def __init__(self, settings: Settings, embedder: DeploymentHandle[Any], store: DeploymentHandle[Any]) -> None:
        self.gateway = Gateway(settings, embedder, store)

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built in the replica, after __init__, so the app holds this replica's handles.
        return create_api(self.gateway)
