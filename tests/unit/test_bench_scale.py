"""`make bench-scale`'s synthetic tenant: recall is measured against vectors re-made on the spot,
so a block of them must come out the same however it is asked for, unit length, and clustered (as
a model's are, not uniform noise)."""

from pathlib import Path

import chromadb
import numpy as np
from chromadb.config import Settings as ChromaSettings

from bench.scale import index_against_exact, metadata_of, text_of, vectors_for
from deployments.core.config import load_settings


def test_any_slice_of_the_vectors_is_the_same_slice_of_all_of_them():
    every = vectors_for(0, 2_500)
    assert np.array_equal(vectors_for(1_200, 100), every[1_200:1_300])
    assert np.array_equal(vectors_for(2_400, 100), every[2_400:])
    assert np.allclose(np.linalg.norm(every, axis=1), 1, atol=1e-5)


def test_the_vectors_cluster_and_the_texts_and_metadata_are_fixed():
    every = vectors_for(0, 1_000)
    nearest = np.sort(every @ every.T, axis=1)[:, -2]  # each one's closest other vector
    assert float(np.median(nearest)) > 0.4  # uniform random 384-dimensional vectors: about 0.15
    assert text_of(7) == text_of(7) != text_of(8)
    assert metadata_of(7) == {"topic": 7, "year": 2007, "kind": "mail"}


def test_the_index_and_exact_search_are_timed_on_the_folder_the_service_wrote(tmp_path: Path):
    settings = load_settings(_env_file=None, tenant_id="scale", persist_dir=tmp_path)
    client = chromadb.PersistentClient(path=str(settings.data_dir), settings=ChromaSettings(anonymized_telemetry=False))
    corpus = vectors_for(0, 500)
    collection = client.create_collection(settings.collection_name, embedding_function=None)
    collection.add(
        ids=[f"doc-{n}" for n in range(500)], embeddings=corpus, metadatas=[metadata_of(n) for n in range(500)]
    )
    timed = index_against_exact(tmp_path, corpus, vectors_for(1_000, 5))
    assert set(timed) == {"index_ms", "exact_ms", "filter_lookup_ms"}
    assert all(0 < ms < 1_000 for ms in timed.values()), timed
