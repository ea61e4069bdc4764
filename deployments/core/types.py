"""The shapes every room passes around: vectors, chunk spans, metadata, filters and search hits."""

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]  # one row per text
Span = tuple[int, int]  # (start, end) character offsets into a text
Metadata = dict[str, str | int | float | bool]
Filter = dict[str, Any]  # a chromadb `where` or `where_document`, already validated
Hit = dict[str, Any]  # one search result as the API returns it
Include = Literal["text", "metadata", "embedding"]  # the fields a read may include beside the id


@dataclass
class Chunks:
    """One document's chunks: spans into its text and one vector per span (the first is the document's)."""

    spans: list[Span]
    vectors: Vectors


class Document(TypedDict):
    """A stored document as reads return it: its id, and the fields the read included."""

    id: str
    text: NotRequired[str | None]
    metadata: NotRequired[dict[str, Any] | None]
    embedding: NotRequired[list[float] | None]


class StoreInfo(TypedDict):
    """What the store says of itself to a health probe."""

    count: int | None  # None when chromadb did not give it in time (a write it waits behind runs)
    index: dict[str, Any]  # the vector index's state ("ready", or a rebuild's progress)
    volume: dict[str, Any]  # the data volume's free space, and whether writes are taken (MIN_FREE_DISK_MB)


class SnapshotManifest(TypedDict):
    """What a snapshot holds: its manifest.json."""

    tenant_id: str
    collection: str
    model_name: str
    dimension: int
    vectors: str
    count: int
    created: str


class Snapshot(SnapshotManifest):
    """A snapshot just taken: its manifest and where it was written."""

    path: str
