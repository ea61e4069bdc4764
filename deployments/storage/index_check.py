"""Checks chromadb's HNSW index files before chromadb opens them, and moves a broken index aside.

chromadb (1.5.9) writes its local HNSW index in place, header first, without fsync. A process killed
mid-write can leave a header that counts elements whose graph records were never written; the next
load reads past the end of `link_lists.bin` into garbage sizes, the index after that grows a
terabyte-sized sparse file, and chromadb segfaults opening it: the store replica then crash-loops.
The index is only a cache of vectors; texts and metadata live in SQLite and a copy of every vector
beside them (storage.kept_vectors), so a broken index is moved aside and rebuilt from those (see
ChromaStore).

The layout is chroma-core/hnswlib's `persistHeader`/`persistDirty`/`loadPersistedIndex`: a 100-byte
header, `data_level0.bin` (per element: level-0 neighbour list, vector, label), `length.bin` (one
float32 per element) and `link_lists.bin` (per element: a uint32 byte size, then that many bytes of
upper-level neighbour lists).
"""

import logging
import mmap
import os
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger("ray.serve")

PERSISTENCE_VERSION = 1
HEADER = struct.Struct("<iQQQQQQiIQQQdQ")
NEIGHBOUR_ID_BYTES = 4  # hnswlib's tableint
LIST_SIZE_BYTES = 4  # hnswlib's linklistsizeint; its low 16 bits are the neighbour count
LABEL_BYTES = 8
MAX_LEVEL = 64  # levels grow as log(n)/log(M): far below this for any real index
LEVEL0_CHUNK = 8192  # elements checked at a time, so a large index is never all in memory
REBUILD_MARKER = "rebuild-pending"
QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True)
class Header:
    version: int
    offset_level0: int
    max_elements: int
    count: int
    bytes_per_element: int
    label_offset: int
    vector_offset: int
    max_level: int
    entry_point: int
    max_m: int
    max_m0: int
    m: int
    mult: float
    ef_construction: int


class BrokenIndex(Exception):
    """What is wrong with an index folder, in words."""


def index_folders(data_dir: Path) -> list[Path]:
    """The HNSW index folders chromadb keeps in `data_dir` (one per vector segment)."""
    return sorted(path.parent for path in data_dir.glob("*/header.bin"))


def check_index(folder: Path) -> None:
    """Raise BrokenIndex if loading `folder` could crash chromadb or give it a corrupt graph."""
    header = read_header(folder)
    _check_sizes(folder, header)
    _check_level0(folder / "data_level0.bin", header)
    _check_upper_levels(folder / "link_lists.bin", header)


def quarantine_broken_indexes(data_dir: Path) -> list[str]:
    """Move every broken index folder into `quarantine/` and mark the store for a rebuild.

    The marker is written (and synced) before anything moves, so a crash in between still leads to
    a rebuild on the next start. Returns one line per quarantined folder."""
    found: list[str] = []
    for folder in index_folders(data_dir):
        try:
            check_index(folder)
        except BrokenIndex as exc:
            found.append(f"{folder.name}: {exc}")
            _write_synced(data_dir / REBUILD_MARKER, f"{folder.name}: {exc}\n")
            destination = data_dir / QUARANTINE_DIR / f"{folder.name}-{time.strftime('%Y%m%dT%H%M%S')}"
            destination.parent.mkdir(exist_ok=True)
            shutil.move(folder, destination)
            logger.error(
                "HNSW index %s is broken (%s): moved to %s; it is rebuilt from the kept vectors and stored texts",
                folder.name,
                exc,
                destination,
            )
    return found


def read_header(folder: Path) -> Header:
    raw = (folder / "header.bin").read_bytes()
    if len(raw) < HEADER.size:
        raise BrokenIndex(f"header.bin has {len(raw)} bytes, expected {HEADER.size}")
    header = Header(*HEADER.unpack_from(raw))
    if header.version != PERSISTENCE_VERSION:
        raise BrokenIndex(f"header version {header.version}, expected {PERSISTENCE_VERSION}")
    level0_list_bytes = header.max_m0 * NEIGHBOUR_ID_BYTES + LIST_SIZE_BYTES
    if (
        header.offset_level0 != 0
        or not 0 < header.max_m0 < 2**16
        or header.vector_offset != level0_list_bytes
        or header.label_offset <= header.vector_offset
        or header.bytes_per_element != header.label_offset + LABEL_BYTES
    ):
        raise BrokenIndex("header layout fields disagree with each other")
    if header.count > header.max_elements:
        raise BrokenIndex(f"header counts {header.count} elements, more than its capacity {header.max_elements}")
    if header.count and not (0 <= header.max_level < MAX_LEVEL and header.entry_point < header.count):
        raise BrokenIndex(f"entry point {header.entry_point} or top level {header.max_level} is out of range")
    return header


def _check_sizes(folder: Path, header: Header) -> None:
    for name, needed in (
        ("data_level0.bin", header.count * header.bytes_per_element),
        ("length.bin", header.count * 4),
    ):
        size = (folder / name).stat().st_size
        if size < needed:
            raise BrokenIndex(f"{name} has {size} bytes, the header's {header.count} elements need {needed}")


def _check_level0(path: Path, header: Header) -> None:
    """Every element's level-0 neighbour count fits its list, every neighbour exists, and every
    label is distinct (elements the header counts but that were never written share label 0)."""
    if header.count == 0:
        return
    rows = np.memmap(path, dtype=np.uint8, mode="r", shape=(header.count, header.bytes_per_element))
    labels = np.empty(header.count, dtype=np.uint64)
    for start in range(0, header.count, LEVEL0_CHUNK):
        chunk = np.asarray(rows[start : start + LEVEL0_CHUNK])
        _check_lists(chunk[:, : header.vector_offset], header.max_m0, header.count, f"level-0 list of element {start}+")
        labels[start : start + len(chunk)] = chunk[:, header.label_offset :].copy().view(np.uint64).ravel()
    if len(np.unique(labels)) != header.count:
        raise BrokenIndex(f"{header.count - len(np.unique(labels))} elements repeat another's label (never written)")


def _check_upper_levels(path: Path, header: Header) -> None:
    """Walk `link_lists.bin` record by record as hnswlib loads it: each size must be a whole number
    of levels, no higher than the top level, and inside the file; the walk must end at its end.
    Then every neighbour on level L must itself reach level L (hnswlib reads its level-L list
    without a bounds check), and the entry point must reach the top level."""
    list_bytes = header.max_m * NEIGHBOUR_ID_BYTES + LIST_SIZE_BYTES
    size = path.stat().st_size
    levels = np.zeros(header.count, dtype=np.int64)
    upper: dict[int, np.ndarray] = {}  # element -> its upper-level lists, one row per level
    if size == 0:
        if header.count:
            raise BrokenIndex(f"link_lists.bin is empty but the header counts {header.count} elements")
        return
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as links:
        position = 0
        for element in range(header.count):
            if position + LIST_SIZE_BYTES > size:
                raise BrokenIndex(f"link_lists.bin ends at element {element} of {header.count}")
            (record_bytes,) = struct.unpack_from("<I", links, position)
            position += LIST_SIZE_BYTES
            levels[element], remainder = divmod(record_bytes, list_bytes)
            if remainder or levels[element] > header.max_level or position + record_bytes > size:
                raise BrokenIndex(f"link_lists.bin record of element {element} is corrupt ({record_bytes} bytes)")
            if record_bytes:
                record = np.frombuffer(links[position : position + record_bytes], dtype=np.uint8)
                upper[element] = record.reshape(-1, list_bytes)
            position += record_bytes
    if position != size:
        raise BrokenIndex(f"link_lists.bin has {size - position} bytes past its last record")
    if header.count and levels[header.entry_point] != header.max_level:
        raise BrokenIndex(f"the entry point reaches level {levels[header.entry_point]}, not the top {header.max_level}")
    for element, lists in upper.items():
        _check_lists(lists, header.max_m, header.count, f"upper-level list of element {element}")
        for level, neighbours in enumerate(_neighbours(lists), start=1):
            if (levels[neighbours] < level).any():
                raise BrokenIndex(f"element {element} links on level {level} to an element below that level")


def _check_lists(lists: np.ndarray, capacity: int, count: int, what: str) -> None:
    """`lists`: one neighbour list per row, as hnswlib lays it out (uint16 count, 2 flag bytes, ids)."""
    sizes = lists[:, :2].copy().view(np.uint16).ravel()
    if (sizes > capacity).any():
        raise BrokenIndex(f"a {what} claims more than {capacity} neighbours")
    ids = lists[:, LIST_SIZE_BYTES:].copy().view(np.uint32)
    used = np.arange(capacity) < sizes[:, None]
    if (ids[used] >= count).any():
        raise BrokenIndex(f"a {what} names a neighbour past the {count} elements")


def _neighbours(lists: np.ndarray) -> list[np.ndarray]:
    """The neighbour ids of each list (row) of lists `_check_lists` has passed."""
    sizes = lists[:, :2].copy().view(np.uint16).ravel()
    ids = lists[:, LIST_SIZE_BYTES:].copy().view(np.uint32)
    return [ids[row, :size] for row, size in enumerate(sizes)]


def _write_synced(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
