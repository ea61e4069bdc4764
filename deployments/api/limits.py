"""Per-plan request limits. The schemas hold the limits every plan shares; these depend on PLAN."""

import json
from collections.abc import Mapping

from deployments.api import filters
from deployments.api.schemas import DeleteRequest, EmbedRequest, ListRequest, SearchRequest, UpdateRequest
from deployments.core.errors import PlanLimitExceeded
from deployments.core.plans import Plan


def check_embed(request: EmbedRequest, plan: Plan) -> None:
    check_count(len(request.documents), plan, "documents")
    for index, doc in enumerate(request.documents):
        if len(doc.text) > plan.max_text_chars:
            raise PlanLimitExceeded(
                f"text has {len(doc.text)} characters; plan {plan.name!r} allows {plan.max_text_chars}",
                field=f"documents.{index}.text",
            )
        check_metadata(doc.metadata, plan, f"documents.{index}.metadata")


def check_inputs(texts: list[str], plan: Plan, field: str = "input") -> None:
    """Texts one POST /v1/embeddings embeds: as many and as long as /embed/'s documents may be,
    since each costs the model what a document does."""
    if len(texts) > plan.max_docs_per_request:
        raise PlanLimitExceeded(
            f"{len(texts)} inputs in one request; plan {plan.name!r} allows {plan.max_docs_per_request}: split it",
            field=field,
        )
    for index, text in enumerate(texts):
        if len(text) > plan.max_text_chars:
            raise PlanLimitExceeded(
                f"{field}[{index}] has {len(text)} characters; plan {plan.name!r} allows {plan.max_text_chars}",
                field=field,
            )


def check_update(request: UpdateRequest, plan: Plan) -> None:
    check_count(len(request.documents), plan, "documents")
    for index, doc in enumerate(request.documents):
        check_metadata(doc.metadata, plan, f"documents.{index}.metadata")


def check_metadata(metadata: Mapping[str, object], plan: Plan, field: str) -> None:
    size = metadata_bytes(metadata)
    if size > plan.max_metadata_bytes:
        raise PlanLimitExceeded(
            f"metadata is {size} bytes as JSON; plan {plan.name!r} allows {plan.max_metadata_bytes} per document",
            field=field,
        )


def metadata_bytes(metadata: Mapping[str, object]) -> int:
    """A document's metadata size as it is measured against the plan: compact JSON, UTF-8."""
    return len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())


def check_chunks(count: int, plan: Plan) -> None:
    """Chunks one /embed/ with chunking makes: each is one run of the model."""
    if count > plan.max_chunks_per_request:
        raise PlanLimitExceeded(
            f"the texts make {count} chunks; plan {plan.name!r} allows {plan.max_chunks_per_request} per request: "
            "send fewer or shorter documents",
            field="documents",
        )


def check_search(request: SearchRequest, plan: Plan, field: str = "") -> None:
    """`field`: where the search sits in the body ("searches.3." in a batch)."""
    if request.top_k > plan.max_top_k:
        raise PlanLimitExceeded(
            f"top_k is {request.top_k}; plan {plan.name!r} allows at most {plan.max_top_k}", field=f"{field}top_k"
        )
    check_filters(request, plan, field)


def check_list(request: ListRequest, plan: Plan) -> None:
    check_count(request.limit, plan, "limit")
    check_filters(request, plan)


def check_filters(request: SearchRequest | ListRequest | DeleteRequest, plan: Plan, field: str = "") -> None:
    """The size of each filter (its grammar is the schemas' to check: deployments.api.filters)."""
    for name, value, size_of in (
        ("where", request.where, filters.where_size),
        ("where_document", request.where_document, filters.where_document_size),
    ):
        if not value:
            continue
        size = size_of(value)
        if size.depth > plan.max_filter_depth:
            raise PlanLimitExceeded(
                f"the filter nests {size.depth} levels deep; plan {plan.name!r} allows {plan.max_filter_depth}",
                field=f"{field}{name}",
            )
        if size.values > plan.max_filter_values:
            raise PlanLimitExceeded(
                f"the filter compares against {size.values} values; plan {plan.name!r} allows "
                f"{plan.max_filter_values}: split the request, or filter on a field that groups the documents",
                field=f"{field}{name}",
            )


def check_ids(ids: list[str], plan: Plan) -> None:
    """Ids in one /delete/ or /get/."""
    check_count(len(ids), plan, "ids")


def check_count(count: int, plan: Plan, field: str) -> None:
    """Documents (or ids) one request names or asks for: at most the plan's max_docs_per_request."""
    if count > plan.max_docs_per_request:
        raise PlanLimitExceeded(
            f"{count} documents in one request; plan {plan.name!r} allows {plan.max_docs_per_request}: split it",
            field=field,
        )
