"""Writes refused before they start when the data volume is nearly full, so that a 507 keeps
meaning "nothing was stored".

chromadb commits a write to its log first, then applies it to its tables and vector index. On a
volume with a little room left the second step is the one that fails (measured with 1 MiB free:
`InternalError: Error in compaction: Failed to apply logs to the metadata segment`): the write is
then neither refused nor visible, and the next start replays it from the log. A write is only
started while the volume keeps MIN_FREE_DISK_MB free beyond what the write itself may take.
"""

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deployments.core.errors import StorageUnavailable
from deployments.core.types import Chunks, Metadata, Vectors

# Bytes a write takes on disk per byte of its texts, vectors and metadata, with room to spare:
# chromadb's log, its tables and full-text index, the HNSW index, the kept vector and the keyword
# index each hold a copy. Measured 5.5-6.7 for writes of 64 and 1,000 documents (2026-12-05).
WRITE_AMPLIFICATION = 10
MIB = 2**20


def write_size(
    metadatas: Sequence[Metadata],
    texts: Sequence[str] = (),
    vectors: Vectors | None = None,
    chunks: Sequence[Chunks | None] = (),
) -> int:
    """The bytes a write carries: its metadata, texts (a chunked one's again, as its chunks) and vectors."""
    chunked = [(text, cut) for text, cut in zip(texts, chunks, strict=False) if cut is not None]
    return (
        len(json.dumps(list(metadatas), default=str))
        + sum(len(text.encode()) for text in texts)
        + sum(len(text.encode()) + cut.vectors.nbytes for text, cut in chunked)
        + (0 if vectors is None else vectors.nbytes)
    )


def volume_state(folder: Path, min_free_bytes: int) -> dict[str, Any]:
    """What /healthz/ says of the data volume: its free space, the margin, and whether writes are taken."""
    free = shutil.disk_usage(folder).free
    return {
        "free_mb": round(free / MIB, 1),
        "min_free_mb": min_free_bytes // MIB,
        "writes": "accepted" if free >= min_free_bytes else "refused",
    }


def refuse_without_room(folder: Path, min_free_bytes: int, incoming_bytes: int = 0) -> None:
    """StorageUnavailable (507, nothing done) unless the volume holding `folder` has `min_free_bytes`
    free beyond what a write of `incoming_bytes` may take."""
    free = shutil.disk_usage(folder).free
    needed = min_free_bytes + WRITE_AMPLIFICATION * incoming_bytes
    if free < needed:
        raise StorageUnavailable.refused(
            f"the volume has {free / MIB:.1f} MiB free; writes stop while less than {needed / MIB:.1f} MiB "
            f"would stay free (MIN_FREE_DISK_MB={min_free_bytes // MIB}, and about {WRITE_AMPLIFICATION}x "
            "this write's size), so that none is cut off halfway"
        )
