"""Per-plan request limits. The schemas hold the limits every plan shares; these depend on PLAN."""

import json
from collections.abc import Mapping

from deployments.errors import PlanLimitExceeded
from deployments.plans import Plan
from deployments.schemas import EmbedRequest, SearchRequest


def check_embed(request: EmbedRequest, plan: Plan) -> None:
    if len(request.documents) > plan.max_docs_per_request:
        raise PlanLimitExceeded(
            f"{len(request.documents)} documents in one request; plan {plan.name!r} allows "
            f"{plan.max_docs_per_request}: split the request",
            field="documents",
        )
    for index, doc in enumerate(request.documents):
        if len(doc.text) > plan.max_text_chars:
            raise PlanLimitExceeded(
                f"text has {len(doc.text)} characters; plan {plan.name!r} allows {plan.max_text_chars}",
                field=f"documents.{index}.text",
            )
        size = metadata_bytes(doc.metadata)
        if size > plan.max_metadata_bytes:
            raise PlanLimitExceeded(
                f"metadata is {size} bytes as JSON; plan {plan.name!r} allows {plan.max_metadata_bytes} per document",
                field=f"documents.{index}.metadata",
            )


def metadata_bytes(metadata: Mapping[str, object]) -> int:
    """A document's metadata size as it is measured against the plan: compact JSON, UTF-8."""
    return len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())


def check_search(request: SearchRequest, plan: Plan) -> None:
    if request.top_k > plan.max_top_k:
        raise PlanLimitExceeded(
            f"top_k is {request.top_k}; plan {plan.name!r} allows at most {plan.max_top_k}", field="top_k"
        )


def check_ids(ids: list[str], plan: Plan) -> None:
    """Ids in one /delete/ or /get/."""
    if len(ids) > plan.max_docs_per_request:
        raise PlanLimitExceeded(
            f"{len(ids)} ids in one request; plan {plan.name!r} allows {plan.max_docs_per_request}", field="ids"
        )
