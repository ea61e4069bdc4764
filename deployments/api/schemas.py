"""Request and response bodies. Limits that hold for every plan are declared here once, as types;
per-plan limits are checked against the tenant's plan in `deployments.api.limits`."""

import math
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from deployments.api import filters
from deployments.core.types import Filter, Include
from deployments.storage.internal_metadata import RESERVED_KEY_PREFIXES
from deployments.storage.ranking import DEFAULT_HYBRID_WEIGHT, SearchMode

MAX_ID_CHARS = 256
MAX_METADATA_KEYS = 64
MAX_METADATA_KEY_CHARS = 128
MAX_QUERY_CHARS = 2_000
MAX_BATCH_SEARCHES = 32
MAX_OFFSET = 1_000_000_000  # past any plan's quota; chromadb's own offset is a 32-bit number

# Ids are stored by chromadb and written to logs: no control characters (NUL included).
DocumentId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _not_reserved(key: str) -> str:
    if key.startswith(RESERVED_KEY_PREFIXES):
        raise ValueError(
            f"metadata key {key!r} is reserved: keys may not start with {' or '.join(RESERVED_KEY_PREFIXES)}"
        )
    return key


MetadataKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$"),
    AfterValidator(_not_reserved),
]
INT64 = (-(2**63), 2**63 - 1)  # chromadb stores integers as 64-bit
_JSON_TYPE_NAMES = {type(None): "null", list: "a list", dict: "an object"}


def _utf8(value: str) -> str:
    """JSON may escape a lone surrogate ("\\ud800"); no storage can encode one (UnicodeEncodeError)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text: it contains a lone surrogate (\\ud800-\\udfff)") from None
    return value


def _metadata_scalar(value: object) -> str | bool | int | float:
    """Strict: "1" stays a string and true a boolean; null, lists and objects are refused."""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and INT64[0] <= value <= INT64[1]:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, int | float):
        raise ValueError(f"metadata number {value} is out of range (finite, 64-bit integers)")
    kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
    raise ValueError(f"metadata values must be a string, number or boolean, not {kind}")


MetadataValue = Annotated[
    str | bool | int | float,
    PlainValidator(_metadata_scalar),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}),
]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_KEYS)]


# A number of a vector: JSON's number only (not true, not "1"), finite.
VectorNumber = Annotated[float, Strict(), AllowInfNan(False)]
_FLOAT32 = np.finfo(np.float32)


def _usable_vector(vector: list[float]) -> list[float]:
    """chromadb keeps float32 vectors and compares them by angle, dividing by their length: a number
    beyond float32, or a length whose square float32 cannot hold (past about 1.8e19, or under about
    1e-19: all zeros included), would turn every score it meets into NaN."""
    with np.errstate(over="ignore"):  # a square past float64 is inf, which the check refuses
        squared = np.sum(np.square(np.asarray(vector, dtype=np.float64)))
    if not _FLOAT32.tiny <= squared <= _FLOAT32.max:
        raise ValueError(
            f"the vector's length is {np.sqrt(squared):.3g}: it must be between 1e-19 and 1e19 (float32 "
            "cosine similarity); scale it (only its direction counts) or send a unit vector"
        )
    return vector


Vector = Annotated[list[VectorNumber], AfterValidator(_usable_vector)]


def _not_blank(value: str) -> str:
    _utf8(value)
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


class _Body(BaseModel):
    # Unknown fields are refused so a typo ("topk") is an error, not a silently ignored option.
    model_config = ConfigDict(extra="forbid")


class DocumentIn(_Body):
    id: DocumentId | None = Field(None, description="Your id for the document; generated when absent.")
    text: str = Field(..., description="The text to embed and store (stored whole, even past the model's window).")
    metadata: Metadata = Field(default_factory=dict, description="Values: string, number or boolean.")
    embedding: Vector | None = Field(
        None, description="Your own vector for the text (DIMENSION finite numbers); the model is then not run."
    )

    _text_not_blank = field_validator("text")(_not_blank)


class EmbedRequest(_Body):
    documents: list[DocumentIn] = Field(..., min_length=1, description="Documents to add or replace (upsert).")
    chunking: StrictBool = Field(
        False,
        description="Cut texts longer than the model's window into overlapping chunks, each embedded, so "
        "that a search finds a document by any part of it (README: Long documents). Counts as one document each.",
    )

    @field_validator("documents")
    @classmethod
    def _ids_unique(cls, documents: list[DocumentIn]) -> list[DocumentIn]:
        seen: set[str] = set()
        for doc in documents:
            if doc.id is not None:
                if doc.id in seen:
                    raise ValueError(f"duplicate id {doc.id!r}: each id may appear once per request")
                seen.add(doc.id)
        return documents

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "documents": [
                        {"id": "doc-1", "text": "The cat sat on the mat.", "metadata": {"source": "notes", "page": 3}},
                        {"text": "Quarterly revenue grew by 12 percent."},
                    ]
                }
            ]
        },
    )


class EmbedResponse(BaseModel):
    ids: list[str] = Field(..., description="The stored ids, in request order (generated ones included).")
    count: int = Field(..., description="Documents in the collection after the write.")
    truncated: list[str] = Field(
        default_factory=list,
        description="Ids whose text was longer than the model's window: stored whole, embedded from its start "
        "(send chunking: true to embed all of it).",
    )
    chunks: dict[str, int] = Field(
        default_factory=dict, description="With chunking: the ids that were cut, and into how many chunks."
    )


def _where(value: Filter) -> Filter:
    if value:  # {} means no filter
        filters.where_size(value)
    return value


def _where_document(value: Filter) -> Filter:
    if value:
        filters.where_document_size(value)
    return value


Where = Annotated[Filter, AfterValidator(_where)]
WhereDocument = Annotated[Filter, AfterValidator(_where_document)]

WHERE = "chromadb metadata filter: $eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains $and $or."
WHERE_DOCUMENT = (
    'chromadb filter on the stored text: {"$contains": "words"}, {"$not_contains": "words"}, {"$regex": "^Q[1-4]"}, '
    '{"$not_regex": "..."}, combined with $and/$or.'
)


class SearchRequest(_Body):
    query: str | None = Field(
        None, max_length=MAX_QUERY_CHARS, description="What to search for, in plain words. Give query or vector."
    )
    vector: Vector | None = Field(
        None, description="Search by this vector instead of a query (semantic mode; DIMENSION numbers)."
    )
    top_k: StrictInt = Field(10, ge=1, description="How many results to return, at most the plan's max_top_k.")
    where: Where | None = Field(None, description=f"{WHERE} In every mode.")
    where_document: WhereDocument | None = Field(None, description=f"{WHERE_DOCUMENT} In every mode.")
    mode: SearchMode = Field(
        "semantic",
        description="semantic: by meaning (the model's vectors); keyword: by the query's words (BM25); "
        "hybrid: both rankings fused (best on our evaluation, README: Retrieval quality).",
    )
    hybrid_weight: Annotated[float, Strict()] | None = Field(
        None,
        ge=0,
        le=1,
        description=f"mode hybrid only: the semantic ranking's share, the keyword one's being the rest "
        f"(0 = keyword only, 1 = semantic only). Default {DEFAULT_HYBRID_WEIGHT}.",
    )

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str | None) -> str | None:
        return None if value is None else _not_blank(value)

    @model_validator(mode="after")
    def _consistent(self) -> "SearchRequest":
        if (self.query is None) == (self.vector is None):
            raise ValueError("give either query (words) or vector (numbers), not both and not neither")
        if self.vector is not None and self.mode != "semantic":
            raise ValueError(f"a vector can only be searched in mode 'semantic', not {self.mode!r}")
        if self.hybrid_weight is not None and self.mode != "hybrid":
            raise ValueError(f"hybrid_weight applies to mode 'hybrid' only, and mode is {self.mode!r}")
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "pets resting on rugs", "top_k": 5, "where": {"source": "notes"}},
                {"query": "quarterly revenue growth", "mode": "hybrid", "hybrid_weight": 0.5},
                {"query": "cats", "mode": "keyword", "where_document": {"$not_contains": "dog"}},
            ]
        },
    )


class SearchHit(BaseModel):
    id: str
    text: str
    metadata: dict[str, MetadataValue]
    score: float = Field(
        ...,
        description="Higher is better; comparable within one mode. semantic: cosine similarity (1 = same "
        "meaning); keyword: BM25 (0 and up, unbounded); hybrid: the fused score, 0 to 1 (README: Search modes).",
    )
    span: list[int] | None = Field(
        None,
        description="For a document stored with chunking, semantic and hybrid modes: the [start, end) character "
        "offsets of its chunk that matched best. The text returned is the whole document.",
    )


class SearchResponse(BaseModel):
    results: list[SearchHit] = Field(..., description="Best match first.")


class BatchSearchRequest(_Body):
    searches: list[SearchRequest] = Field(
        ..., min_length=1, max_length=MAX_BATCH_SEARCHES, description="Searches answered together, in order."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"searches": [{"query": "pets", "top_k": 3}, {"query": "tax", "mode": "keyword"}]}]
        },
    )


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse] = Field(..., description="One answer per search, in request order.")


class DeleteRequest(_Body):
    ids: list[DocumentId] | None = Field(None, min_length=1, description="Ids to delete; unknown ids are ignored.")
    where: Where | None = Field(None, description=f"Instead of ids: delete what matches. {WHERE}")
    where_document: WhereDocument | None = Field(
        None, description=f"Instead of ids: delete what matches. {WHERE_DOCUMENT}"
    )

    @model_validator(mode="after")
    def _ids_or_filter(self) -> "DeleteRequest":
        filtered = self.where is not None or self.where_document is not None
        if (self.ids is None) == (not filtered):
            raise ValueError("give either ids, or a filter (where, where_document), not both and not neither")
        if filtered and not (self.where or self.where_document):
            raise ValueError("an empty filter would delete every document: name what to delete")
        return self

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"ids": ["doc-1", "doc-2"]}, {"where": {"source": "old-import"}}]},
    )


class DeleteResponse(BaseModel):
    deleted: int = Field(..., description="How many of the ids existed and were deleted.")
    count: int = Field(..., description="Documents left in the collection.")


DEFAULT_INCLUDE: tuple[Include, ...] = ("text", "metadata")


class GetRequest(_Body):
    ids: list[DocumentId] = Field(..., min_length=1, description="Ids to fetch; unknown ids are listed in `missing`.")
    include: list[Include] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE), description="What to return of each document."
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ids": ["doc-1", "doc-2"], "include": ["text", "metadata"]}]}
    )


class DocumentOut(BaseModel):
    id: str
    text: str | None = Field(None, description="With include 'text'.")
    metadata: dict[str, MetadataValue] | None = Field(None, description="With include 'metadata'.")
    embedding: list[float] | None = Field(None, description="With include 'embedding': the stored vector.")


class ListRequest(_Body):
    # Strict: JSON's true/false are not the numbers 1 and 0 here.
    limit: StrictInt = Field(100, ge=1, description="Documents per page, at most the plan's max_docs_per_request.")
    offset: StrictInt = Field(
        0, ge=0, le=MAX_OFFSET, description="Matching documents to skip: the previous page's next_offset."
    )
    where: Where | None = Field(None, description=WHERE)
    where_document: WhereDocument | None = Field(None, description=WHERE_DOCUMENT)
    include: list[Include] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE), description="What to return of each document."
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"limit": 100, "offset": 0, "where": {"source": "notes"}}]}
    )


class ListResponse(BaseModel):
    documents: list[DocumentOut] = Field(..., description="In the order the documents were first added.")
    next_offset: int | None = Field(..., description="The offset of the next page; null on the last one.")


class MetadataUpdate(_Body):
    id: DocumentId
    metadata: Metadata = Field(..., description="Replaces the document's metadata whole.")


class UpdateRequest(_Body):
    documents: list[MetadataUpdate] = Field(..., min_length=1, description="Existing documents and their new metadata.")

    @field_validator("documents")
    @classmethod
    def _ids_unique(cls, documents: list[MetadataUpdate]) -> list[MetadataUpdate]:
        ids = [doc.id for doc in documents]
        if len(set(ids)) != len(ids):
            raise ValueError("each id may appear once per request")
        return documents

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"documents": [{"id": "doc-1", "metadata": {"source": "notes", "page": 4}}]}]},
    )


class UpdateResponse(BaseModel):
    updated: int = Field(..., description="Documents whose metadata was replaced (all of those asked).")


class GetResponse(BaseModel):
    documents: list[DocumentOut] = Field(..., description="The documents found, in request order.")
    missing: list[str] = Field(default_factory=list, description="Requested ids that are not stored.")


class CountResponse(BaseModel):
    count: int = Field(..., description="Documents stored.")
    quota: int = Field(..., description="MAX_DOCS: the most documents this tenant may store.")


class DeploymentState(BaseModel):
    status: str = Field(
        ...,
        description="'ok'; 'busy' (alive, but did not answer the probe within 2 s: working through a queue); "
        "or 'unavailable' (not there: starting, restarting or failed).",
    )
    detail: dict[str, Any] = Field(default_factory=dict)


class PlanLimitsOut(BaseModel):
    """The plan's limits (README: Plans); rates are per Ingress replica."""

    max_docs_per_request: int
    max_top_k: int
    max_text_chars: int
    max_metadata_bytes: int
    max_body_bytes: int
    requests_per_s: int
    documents_per_s: int
    max_chunks_per_request: int
    max_filter_values: int
    max_filter_depth: int
    chunk_tokens: int = Field(..., description="In effect: CHUNK_TOKENS, or the plan's default.")
    chunk_overlap_tokens: int = Field(..., description="In effect: CHUNK_OVERLAP_TOKENS, or the plan's default.")


class HealthResponse(BaseModel):
    status: str = Field(..., description="'ok' while every deployment is there (ok or busy), else 'degraded'.")
    tenant_id: str
    plan: str
    model_name: str
    dimension: int
    count: int | None = Field(..., description="Documents stored; null while the store is unavailable.")
    quota: int = Field(..., description="MAX_DOCS: the most documents this tenant may store.")
    auth: str = Field(..., description="'api_key': every other route needs the key; 'open': no key is set.")
    keys: list[str] = Field(
        ..., description="Which keys are set (API_KEY, API_KEY_NEXT, API_KEY_READONLY), never their values."
    )
    limits: PlanLimitsOut
    deployments: dict[str, DeploymentState]


class ErrorResponse(BaseModel):
    error: str = Field(..., description="Stable machine-readable name, e.g. quota_exceeded.")
    message: str = Field(..., description="What is wrong, in words.")
    field: str | None = Field(None, description="The request field at fault, as a dotted path.")


class SnapshotResponse(BaseModel):
    path: str = Field(..., description="The snapshot folder, on the instance's volume (PERSIST_DIR/snapshots/).")
    tenant_id: str
    collection: str
    model_name: str
    dimension: int
    count: int = Field(..., description="Documents in the snapshot.")
    created: str = Field(..., description="When it was taken (UTC, ISO 8601).")
