"""Metadata keys the service keeps beside a tenant's own, under a prefix tenants may not use.

`_cdbi:vector_sha256` marks a document whose vector the tenant supplied (the model did not embed
it): the digest of that vector, under which storage.kept_vectors keeps it. Data format 1 (before
storage.kept_vectors) kept the supplied vector itself, base64 float32, under `_cdbi:vector`: still
read, never written.
"""

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from deployments.core.types import Vectors

PREFIX = "_cdbi:"
OWN_VECTOR = f"{PREFIX}vector"  # data format 1
OWN_VECTOR_DIGEST = f"{PREFIX}vector_sha256"
CHUNK_SET = f"{PREFIX}chunkset"  # a chunked document's and its chunks' token (storage.chunk_store)
# Keys a tenant may not use: chromadb's own ("chroma:document", "#document", ...), the service's,
# and "$", which would read as an operator in chromadb's filters.
RESERVED_KEY_PREFIXES = ("chroma:", "#", "$", PREFIX)


def public(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a tenant sees of a document's metadata: their own keys only."""
    return {key: value for key, value in (metadata or {}).items() if not key.startswith(PREFIX)}


def internal(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (metadata or {}).items() if key.startswith(PREFIX)}


def replacing(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """What to send chromadb to make a record's metadata exactly `new`: chromadb merges metadata on
    upsert and update, so old keys missing from `new` are cleared (None)."""
    merged: dict[str, Any] = {key: None for key in (old or {}) if key not in new}
    merged.update(new)
    return merged or None


def replacing_public(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """`replacing`, for a tenant's metadata update: their keys become `new`, the service's stay."""
    return replacing(old, {**new, **internal(old)})


def supplied_vector(metadata: Mapping[str, Any] | None) -> bool:
    """Whether the tenant supplied this document's vector."""
    return OWN_VECTOR_DIGEST in (metadata or {}) or OWN_VECTOR in (metadata or {})


def own_vector(metadata: Mapping[str, Any] | None) -> Vectors | None:
    """The vector the tenant supplied, where data format 1 kept it in the metadata."""
    encoded = (metadata or {}).get(OWN_VECTOR)
    return None if encoded is None else np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
