"""The shapes every room passes around: vectors, chunk spans, metadata, filters and search hits."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]  # one row per text
Span = tuple[int, int]  # (start, end) character offsets into a text
Metadata = dict[str, str | int | float | bool]
Filter = dict[str, Any]  # a chromadb `where` or `where_document`, already validated
Hit = dict[str, Any]  # one search result as the API returns it


@dataclass
class Chunks:
    """One document's chunks: spans into its text and one vector per span (the first is the document's)."""

    spans: list[Span]
    vectors: Vectors
