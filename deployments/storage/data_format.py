"""The data folder's format version, so that a release which changes what is stored opens the
folders of the releases before it, and a folder written by a later release is refused, not misread.

1: chromadb's files and `keyword/`. No version file: every folder written before this one existed.
2: also `vectors.sqlite3`, a copy of every vector (storage.kept_vectors). A format-1 folder is read
   as it is; the store copies its vectors from chromadb's index in the background, resumably
   (storage.rebuild), and marks the folder 2 once every vector is kept.
"""

import os
from pathlib import Path

from deployments.core.errors import ConfigError

CURRENT = 2
FILE = "format-version"
DATABASE = "chroma.sqlite3"


def opened(data_dir: Path) -> int:
    """The format of the folder about to be opened: a new folder is marked CURRENT at once."""
    marked = data_dir / FILE
    if not marked.exists():
        if not (data_dir / DATABASE).exists():
            mark(data_dir, CURRENT)
            return CURRENT
        return 1
    version = int(marked.read_text().strip())
    if version > CURRENT:
        raise ConfigError(
            f"{data_dir} holds data format {version}, written by a later release than this one (format {CURRENT}): "
            "run that release or a later one, or restore a snapshot this release took"
        )
    return version


def mark(data_dir: Path, version: int) -> None:
    """Record `version`, synced and replaced in one step (a crash leaves the old or the new one)."""
    partial = data_dir / f"{FILE}.partial"
    with partial.open("w") as file:
        file.write(f"{version}\n")
        file.flush()
        os.fsync(file.fileno())
    partial.replace(data_dir / FILE)
