"""Upgrades keep every tenant's data: a folder written by the release before kept vectors (data
format 1, deployments.storage.data_format) opens in this one with nothing lost and its searches
unchanged; the copy of its vectors is made in the background, resumably, and the folder then says
format 2, so that a broken index afterwards is rebuilt without the model. A folder of a later
format is refused. The earlier release's code is taken from git, as it was released."""

import asyncio
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployments.core.config import Settings
from deployments.core.errors import ConfigError
from deployments.storage import data_format
from deployments.storage.index_check import index_folders
from deployments.storage.ranking import Query
from deployments.storage.tenant_store import TenantStore
from tests.fakes import FakeEmbedder
from tests.unit.test_index_check import link_lists_cut_short, store_replica

REPO = Path(__file__).resolve().parents[2]
EARLIER_RELEASE = "271c376"  # the last commit of data format 1
DOCS = 1_100  # past chromadb's 1,000-write sync threshold: its HNSW files are on disk
SEARCHED = range(0, DOCS, 89)  # documents whose own text is searched for: each ranks first


def text_of(n: int) -> str:
    return f"note {n} " + " ".join(f"w{(n * 7 + k) % 997}" for k in range(12))


# Run by the earlier release's code: a tenant of model-made vectors (the hashing backend), every
# 10th document's vector the tenant's own, and chunked documents; prints what searches find.
WRITE_WITH_EARLIER_RELEASE = """
import json, sys
import numpy as np
from deployments.core.config import load_settings
from deployments.core.types import Chunks
from deployments.embedding.backends import HashingBackend
from deployments.storage.ranking import Query
from deployments.storage.tenant_store import TenantStore

backend = HashingBackend()
{text_of}
store = TenantStore(load_settings(_env_file=None, persist_dir=sys.argv[1]))
rng = np.random.default_rng(3)
for start in range(0, {docs}, 100):
    ids = [f"doc-{{n}}" for n in range(start, start + 100)]
    texts = [text_of(n) for n in range(start, start + 100)]
    vectors = backend.encode(texts)
    own = rng.normal(size=(10, vectors.shape[1])).astype(np.float32)
    vectors[::10] = own / np.linalg.norm(own, axis=1, keepdims=True)
    store.upsert(ids, texts, vectors, [{{"n": start}}] * 100, [n % 10 == 0 for n in range(100)])
long = ["first part of a long one. second part of it. third and last part."] * 3
spans = [[(0, 24), (25, 43), (44, 66)]] * 3
chunks = [Chunks(cut, backend.encode([text[a:b] for a, b in cut])) for text, cut in zip(long, spans)]
store.upsert(["long-0", "long-1", "long-2"], long, np.stack([c.vectors[0] for c in chunks]), [{{}}] * 3, None, chunks)
found = []
for n in {searched}:
    (hits,) = store.search.many([Query(backend.encode([text_of(n)])[0], 5)])
    found.append([[hit["id"], hit["score"]] for hit in hits])
store.close()
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def earlier_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The earlier release's `deployments` package, exported from git."""
    folder = tmp_path_factory.mktemp("earlier-release")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", EARLIER_RELEASE, "deployments"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def written_by_earlier_release(release: Path, settings: Settings) -> list[list[Any]]:
    script = WRITE_WITH_EARLIER_RELEASE.format(docs=DOCS, searched=list(SEARCHED), text_of=inspect.getsource(text_of))
    run = subprocess.run(
        [sys.executable, "-c", script, str(settings.persist_dir)],
        cwd=release,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(release), "ANONYMIZED_TELEMETRY": "False"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found: list[list[Any]] = json.loads(run.stdout.strip().splitlines()[-1])
    return found


def searches(store: TenantStore) -> list[list[Any]]:
    backend = FakeEmbedder().backend
    found = []
    for n in SEARCHED:
        (hits,) = store.search.many([Query(backend.encode([text_of(n)])[0], 5)])
        assert not isinstance(hits, Exception)
        found.append([[hit["id"], hit["score"]] for hit in hits])
    return found


def assert_same_results(now: list[list[Any]], then: list[list[Any]]) -> None:
    """The same first hit (the document searched for) and the same scores (documents of equal score
    may swap places)."""
    for hits, expected in zip(now, then, strict=True):
        assert hits[0][0] == expected[0][0]
        assert np.allclose([hit[1] for hit in hits], [hit[1] for hit in expected], atol=1e-6)


def all_vectors(store: TenantStore) -> dict[str, np.ndarray]:
    vectors: dict[str, np.ndarray] = {}
    for collection in store.rebuild.collections.values():
        found = collection.get(include=["embeddings"])
        vectors.update(zip(found["ids"], np.asarray(found["embeddings"]), strict=True))
    return vectors


def test_a_folder_of_the_earlier_release_opens_and_is_upgraded_with_nothing_lost(earlier_release, settings):
    before = written_by_earlier_release(earlier_release, settings)
    assert not (settings.data_dir / data_format.FILE).exists()  # what the earlier release leaves

    store = TenantStore(settings)
    assert store.format == 1 and store.rebuild.upgrading and not store.rebuild.pending
    assert store.count() == DOCS + 3
    assert_same_results(searches(store), before)
    original = all_vectors(store)
    # Interrupted after its first page (a restart mid-upgrade): still format 1, resumed next time.
    assert store.rebuild.keep_indexed(store.rebuild.ids("documents")[:500], "documents") == 500
    store.close()

    async def upgrade() -> dict[str, Any]:
        replica = store_replica(settings)
        assert replica.store.rebuild.upgrading and replica.index == {"state": "ready"}
        await replica._rebuild
        replica.store.close()
        return dict(replica.index)

    assert asyncio.run(upgrade()) == {"state": "ready", "rebuilt": 0, "re_embedded": 0}
    assert (settings.data_dir / data_format.FILE).read_text() == f"{data_format.CURRENT}\n"

    # Every vector of the earlier release is now kept: a broken index costs no model run.
    for folder in index_folders(settings.data_dir):
        link_lists_cut_short(folder)
    embedder = FakeEmbedder()

    async def rebuild() -> dict[str, Any]:
        replica = store_replica(settings, embedder)
        assert replica.store.quarantined and not replica.store.rebuild.upgrading
        await replica._rebuild
        replica.store.close()
        return dict(replica.index)

    index = asyncio.run(rebuild())
    assert index["state"] == "ready" and index["rebuilt"] > 0 and index["re_embedded"] == 0
    assert embedder.encoded == []
    store = TenantStore(settings)
    restored = all_vectors(store)
    assert restored.keys() == original.keys()
    assert all(np.allclose(restored[id_], vector, atol=1e-6) for id_, vector in original.items())
    assert_same_results(searches(store), before)
    store.close()


def test_a_folder_of_a_later_format_is_refused(settings):
    TenantStore(settings).close()
    assert (settings.data_dir / data_format.FILE).read_text() == f"{data_format.CURRENT}\n"  # a new folder
    data_format.mark(settings.data_dir, data_format.CURRENT + 1)
    with pytest.raises(ConfigError, match="written by a later release"):
        TenantStore(settings)
