"""The plan table: every per-plan limit, declared once and read by settings, validation and docs."""

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    name: str
    max_docs: int  # document quota when MAX_DOCS is not set
    max_docs_per_request: int  # documents in one /embed/ or ids in one /delete/
    max_top_k: int  # largest top_k one /search/ may ask for
    max_text_chars: int  # longest document text, in characters
    max_metadata_bytes: int  # one document's metadata, as compact JSON in UTF-8
    max_body_bytes: int  # one request body (413 beyond)
    requests_per_s: int  # API requests in any one-second window, per Ingress replica (429 beyond)
    documents_per_s: int  # documents written or deleted in any one-second window, per Ingress replica
    max_chunks_per_request: int  # chunks one /embed/ with chunking may make (each is a model run)
    max_filter_values: int  # values one where or where_document compares against ($in members each count)
    max_filter_depth: int = 10  # levels of nesting of one filter ({"k": 1} is 1, {"k": {"$gt": 1}} 2)
    # Chunking defaults (CHUNK_TOKENS, CHUNK_OVERLAP_TOKENS override them): the same on every plan,
    # because the model's window, not the plan, bounds a chunk; plans differ in how many chunks.
    chunk_tokens: int = 200
    chunk_overlap_tokens: int = 40


# enterprise's per-request cap stays under chromadb's own write batch limit (5,461 on this build),
# so one request is always within one chromadb write (alone, or with other requests: TenantStore.upsert_many)
# and therefore all-or-nothing. documents_per_s is at
# least max_docs_per_request, so a full request can always pass on an idle instance.
PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan(
            "starter",
            max_docs=100_000,
            max_docs_per_request=256,
            max_top_k=50,
            max_text_chars=10_000,
            max_metadata_bytes=4_096,
            max_body_bytes=8 * MIB,
            requests_per_s=200,
            documents_per_s=1_000,
            max_chunks_per_request=2_048,
            max_filter_values=1_000,
        ),
        Plan(
            "pro",
            max_docs=1_000_000,
            max_docs_per_request=1_000,
            max_top_k=200,
            max_text_chars=50_000,
            max_metadata_bytes=16_384,
            max_body_bytes=32 * MIB,
            requests_per_s=1_000,
            documents_per_s=5_000,
            max_chunks_per_request=8_192,
            max_filter_values=5_000,
        ),
        Plan(
            "enterprise",
            max_docs=10_000_000,
            max_docs_per_request=5_000,
            max_top_k=1_000,
            max_text_chars=200_000,
            max_metadata_bytes=65_536,
            max_body_bytes=128 * MIB,
            requests_per_s=5_000,
            documents_per_s=20_000,
            max_chunks_per_request=32_768,
            max_filter_values=10_000,
        ),
    )
}
