"""FastAPI dependencies shared by every module of routes (app.py, openai_embeddings.py)."""

from typing import Annotated

from fastapi import Depends, Request

from deployments.api.service import TenantService


async def get_service(request: Request) -> TenantService:
    # async: FastAPI runs a plain function dependency in a worker thread, a hop per request.
    service: TenantService = request.app.state.service
    return service


ServiceDep = Annotated[TenantService, Depends(get_service)]
