"""`make bench-scale`'s synthetic tenant: recall is measured against vectors re-made on the spot,
so a block of them must come out the same however it is asked for, unit length, and clustered (as
a model's are, not uniform noise)."""

import numpy as np

from bench.scale import metadata_of, text_of, vectors_for


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
