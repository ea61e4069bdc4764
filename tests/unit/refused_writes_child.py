"""Run by test_refused_writes in a child process: opens a TenantStore, makes its folder refuse
writes (`full`: a file-size limit, as a full disk; `readonly`: no write permission), tries to write,
reads, and prints what happened as JSON. `recover` opens the folder afresh, as a restarted store
replica does, and writes once."""

import json
import os
import resource
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import chromadb.api.rust  # noqa: F401  (imported before any privileges are dropped)
import numpy as np

from deployments.core.config import load_settings
from deployments.core.errors import ServiceError
from deployments.storage.ranking import Query
from deployments.storage.tenant_store import TenantStore

NOBODY = 65534


def vectors(count: int, seed: int) -> np.ndarray:
    found = np.random.default_rng(seed).normal(size=(count, 384)).astype(np.float32)
    return found / np.linalg.norm(found, axis=1, keepdims=True)


def attempt(write: Callable[[], object]) -> dict[str, object]:
    try:
        write()
    except ServiceError as exc:
        return {"status": exc.status_code, "error": exc.error, "message": exc.message}
    return {"status": 200}


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def main(persist_dir: str, fault: str) -> None:
    root = Path(persist_dir)
    if os.geteuid() == 0 and fault == "readonly":
        # Permissions do not bind root: run as nobody, in a folder of nobody's where nobody can reach it.
        root = Path(tempfile.mkdtemp(prefix="refused-writes-"))
        os.chown(root, NOBODY, NOBODY)
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    store = TenantStore(load_settings(_env_file=None, persist_dir=root, max_docs=1_000))
    store.upsert([f"a{i}" for i in range(40)], ["before"] * 40, vectors(40, 0), [{}] * 40)
    data = root / store_folder(root)
    if fault == "full":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        largest = max(path.stat().st_size for path in root.rglob("*") if path.is_file())
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest, resource.RLIM_INFINITY))
    else:
        set_writable(data, False)
    texts = ["x" * 4_000] * 200
    results = {
        "upsert": attempt(lambda: store.upsert([f"b{i}" for i in range(200)], texts, vectors(200, 1), [{}] * 200))
    }
    if fault == "readonly":
        # Not on a full disk: there a delete may fit in free pages, and chromadb 1.5.9 sometimes
        # hangs in a delete after a failed write (README: Reliability).
        results["delete"] = attempt(lambda: store.delete(["a1", "a2"]))
    hits = store.search.many([Query(vectors(1, 2)[0], 5)])[0]
    reads = {"count": store.count(), "hits": len(hits) if isinstance(hits, list) else -1}
    if fault == "readonly":
        set_writable(data, True)
    print(json.dumps({"refused": results, "reads": reads, "folder": str(root)}), flush=True)
    # chromadb may hang in its next write after a failed one, and at exit: the service's store
    # replica is restarted by its health check then (README: Reliability); here, just leave.
    os._exit(0)


def recover(persist_dir: str) -> None:
    store = TenantStore(load_settings(_env_file=None, persist_dir=persist_dir, max_docs=1_000))
    after = attempt(lambda: store.upsert(["c"], ["after"], vectors(1, 3), [{}]))
    print(json.dumps({"recovered": after, "count": store.count()}), flush=True)


def store_folder(root: Path) -> str:
    (folder,) = [path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    return folder


if __name__ == "__main__":
    if sys.argv[2] == "recover":
        recover(sys.argv[1])
    else:
        main(sys.argv[1], sys.argv[2])
