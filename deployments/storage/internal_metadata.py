"""Metadata keys the service keeps beside a tenant's own, under a prefix tenants may not use.

`_cdbi:vector` holds a vector the tenant supplied (base64 float32) for a document the model did not
embed: the HNSW index is only a cache, and when a crash breaks it (deployments.storage.index_check) texts
are re-embedded; a supplied vector cannot be, so it is kept here, in the same SQLite transaction
as the document, and restored from here.
"""

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from deployments.core.types import Vectors

PREFIX = "_cdbi:"
OWN_VECTOR = f"{PREFIX}vector"
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


def encode_vector(vector: Vectors) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def own_vector(metadata: Mapping[str, Any] | None) -> Vectors | None:
    """The vector the tenant supplied for this document, if they did."""
    encoded = (metadata or {}).get(OWN_VECTOR)
    return None if encoded is None else np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
