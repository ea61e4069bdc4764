"""Snapshots of a tenant's data folder taken while the service runs, and their restore.

A snapshot is a folder: chromadb's SQLite database and the kept vectors (storage.kept_vectors)
copied with SQLite's online backup (a consistent copy even while they are open), the data format
version, then chromadb's HNSW index folders, and `manifest.json` (tenant, model, dimension,
document count, time). The ChromaStore takes it holding its write lock, so no write is
half in it. The HNSW files are a cache of the vectors that chromadb may be updating as they are
copied; copied after the database, they hold at least what the database says they hold, and the
rest is replayed from its log. The keyword index is left out (tantivy merges segments in the
background): the restored store rebuilds it from the texts.

Restore (`python -m deployments.snapshot restore SNAPSHOT`) copies a snapshot into the tenant
folder that the settings (TENANT_ID, PERSIST_DIR) name, for an instance that is not running there,
after checking that it is the same tenant and model; it refuses to overwrite existing data. It also
leaves the rebuild marker, so the first start checks every vector (a torn index file is moved
aside, a missing vector re-made: deployments.storage.index_check, ChromaStore.rebuild_index).
"""

import json
import re
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

from deployments.core.config import Settings
from deployments.core.errors import ConfigError, StorageUnavailable
from deployments.core.types import SnapshotManifest
from deployments.storage import data_format
from deployments.storage.data_format import DATABASE
from deployments.storage.index_check import REBUILD_MARKER
from deployments.storage.kept_vectors import KeptVectors

MANIFEST = "manifest.json"
SNAPSHOTS_DIR = "snapshots"  # under PERSIST_DIR, beside the tenant's folder


def take(data_dir: Path, destination: Path, folders: list[Path], manifest: SnapshotManifest, kept: KeptVectors) -> Path:
    """Copy `data_dir`'s database, the kept vectors, the format version and `folders` (the index
    folders) to `destination`. The caller holds the store's write lock."""
    partial = destination.with_name(destination.name + ".partial")
    partial.mkdir(parents=True)
    try:
        source = sqlite3.connect(data_dir / DATABASE)
        target = sqlite3.connect(partial / DATABASE)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        kept.backup(partial)
        if (data_dir / data_format.FILE).exists():
            shutil.copy2(data_dir / data_format.FILE, partial / data_format.FILE)
        for folder in folders:
            shutil.copytree(folder, partial / folder.relative_to(data_dir))
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    except (OSError, sqlite3.Error):
        shutil.rmtree(partial, ignore_errors=True)  # no half snapshot is left behind
        raise
    partial.rename(destination)  # a snapshot folder is complete, or named .partial
    return destination


# Free space a snapshot must leave on the volume, beyond its own size, so the tenant's writes still
# have room (a full disk refuses them, README: Reliability): this share of the volume, at least FLOOR.
HEADROOM_SHARE = 0.05
HEADROOM_FLOOR_BYTES = 256 * 2**20


def check_room(data_dir: Path, destination: Path) -> None:
    """Refuse a snapshot (507, nothing written) that would leave the volume short of headroom. Its
    size is about the data folder's."""
    needed = sum(path.stat().st_size for path in data_dir.rglob("*") if path.is_file())
    volume = shutil.disk_usage(destination.parent)
    headroom = max(HEADROOM_SHARE * volume.total, HEADROOM_FLOOR_BYTES)
    if volume.free - needed < headroom:
        raise StorageUnavailable(
            f"a snapshot needs about {needed / 2**20:.0f} MiB and the volume has {volume.free / 2**20:.0f} MiB free, "
            f"of which {headroom / 2**20:.0f} MiB stay free for the tenant's writes; nothing was written: free space "
            "or lower SNAPSHOTS_KEPT"
        )


def prune(settings: Settings) -> list[Path]:
    """Remove this tenant's oldest snapshots past SNAPSHOTS_KEPT (and any left half-written by a
    crash); returns what was removed. Oldest first by name: snapshot_path's names sort by time."""
    folder = settings.persist_dir / SNAPSHOTS_DIR
    # Exactly snapshot_path's names: another tenant's ("default-eu-...") never matches.
    # (Names made before microseconds were added, "...T070000Z-...", are pruned too.)
    named = re.compile(rf"{re.escape(settings.collection_name)}-\d{{8}}T\d{{6}}(\.\d{{6}})?Z-[0-9a-f]+(\.partial)?")
    mine = [path for path in folder.iterdir() if named.fullmatch(path.name)] if folder.is_dir() else []
    partial = [path for path in mine if path.name.endswith(".partial")]
    complete = sorted(path for path in mine if path not in partial)
    removed = partial + complete[: max(0, len(complete) - settings.snapshots_kept)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def snapshot_path(settings: Settings) -> Path:
    """A new folder's path: the tenant's folder name, the time to the microsecond (names sort by
    when they were taken: prune), and a random suffix (two taken at once still differ)."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return settings.persist_dir / SNAPSHOTS_DIR / f"{settings.collection_name}-{stamp}-{uuid.uuid4().hex[:6]}"


def restore(snapshot: Path, settings: Settings) -> Path:
    """Copy `snapshot` into the settings' tenant folder; returns that folder."""
    manifest_path = snapshot / MANIFEST
    if not manifest_path.is_file():
        raise ConfigError(f"{snapshot} is not a snapshot (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    if manifest["collection"] != settings.collection_name:
        raise ConfigError(
            f"the snapshot is of tenant {manifest['tenant_id']!r}; these settings are for {settings.tenant_id!r}: "
            "set TENANT_ID to the snapshot's tenant"
        )
    if (manifest["model_name"], manifest["dimension"]) != (settings.model_name, settings.dimension):
        raise ConfigError(
            f"the snapshot was embedded with MODEL_NAME={manifest['model_name']!r} (DIMENSION="
            f"{manifest['dimension']}); these settings say {settings.model_name!r} ({settings.dimension})"
        )
    if (made := manifest.get("vectors", "fp32")) != settings.vectors:
        raise ConfigError(
            f"the snapshot holds {made} vectors; EMBED_BACKEND={settings.embed_backend} makes {settings.vectors} ones"
        )
    target = settings.data_dir
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} already holds data: restore into an empty PERSIST_DIR or remove it first")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(snapshot, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MANIFEST))
    (target / REBUILD_MARKER).write_text(f"restored from {snapshot}: check every vector\n")
    return target
