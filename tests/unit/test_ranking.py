"""Hybrid fusion (deployments.storage.ranking.fuse): a convex combination of min-max-normalised scores."""

import pytest

from deployments.storage.ranking import cosine_score, fuse

SEMANTIC = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
KEYWORD = [("c", 30.0), ("d", 20.0), ("a", 10.0)]


def test_weight_one_is_the_semantic_ranking_and_zero_the_keyword_one():
    assert [id_ for id_, _ in fuse(SEMANTIC, KEYWORD, 1.0)][:3] == ["a", "b", "c"]
    assert [id_ for id_, _ in fuse(SEMANTIC, KEYWORD, 0.0)][:3] == ["c", "d", "a"]


def test_scores_are_the_weighted_sum_of_scores_normalised_per_list():
    fused = dict(fuse(SEMANTIC, KEYWORD, 0.5))
    # semantic normalised: a 1, b 0.5, c 0; keyword: c 1, d 0.5, a 0; a missing document scores 0.
    assert fused == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.5, "d": 0.25})
    assert all(0.0 <= score <= 1.0 for score in fused.values())


def test_ties_keep_the_semantic_order_first_and_empty_lists_are_fine():
    assert [id_ for id_, _ in fuse(SEMANTIC, KEYWORD, 0.5)] == ["a", "c", "b", "d"]
    assert fuse([], [], 0.5) == []
    ((only, score),) = fuse([("x", 0.3)], [], 0.7)
    assert only == "x" and score == pytest.approx(0.7)  # a lone result counts as the best


def test_a_cosine_score_is_clamped_to_its_range():
    assert cosine_score(-2.4e-7) == 1.0 and cosine_score(2.0000003) == -1.0 and cosine_score(0.25) == 0.75
