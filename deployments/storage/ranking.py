"""What a search asks of the store, and hybrid ranking: the semantic and the keyword result lists
of one query fused into one.

A convex combination of min-max-normalised scores, chosen on SciFact's train queries over
reciprocal rank fusion (README: Retrieval quality): `weight` x semantic + (1 - weight) x keyword,
each list's scores first mapped onto 0..1 (best = 1, worst = 0), a document missing from a list
scoring 0 there. The fused score is comparable within one query, not across queries.
"""

from typing import Any, Literal, NamedTuple

from deployments.core.types import Vectors

SearchMode = Literal["semantic", "keyword", "hybrid"]
# The semantic share; best on SciFact train (0.3-0.7 tried, README).
DEFAULT_HYBRID_WEIGHT = 0.5
# Each mode contributes this many candidates (or top_k, if more) before fusion.
HYBRID_CANDIDATES = 100

Scored = list[tuple[str, float]]  # (id, score), best first


def cosine_score(distance: float) -> float:
    """A semantic score from chromadb's cosine distance, within the documented -1..1: float32
    rounding alone can give 1.0000002 for a document identical to the query."""
    return min(1.0, max(-1.0, 1.0 - distance))


class Query(NamedTuple):
    vector: Vectors | None  # the query's embedding; None in keyword mode, which needs none
    top_k: int
    where: dict[str, Any] | None = None
    text: str = ""  # the query's words, for the keyword index
    mode: SearchMode = "semantic"
    weight: float = DEFAULT_HYBRID_WEIGHT  # hybrid only: the semantic share
    where_document: dict[str, Any] | None = None  # a filter on the stored text


def fuse(semantic: Scored, keyword: Scored, weight: float) -> Scored:
    """Both lists fused, best first; ties keep semantic order, then keyword order."""
    fused: dict[str, float] = {}
    for share, ranked in ((weight, semantic), (1.0 - weight, keyword)):
        for id_, score in _normalised(ranked):
            fused[id_] = fused.get(id_, 0.0) + share * score
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)


def _normalised(ranked: Scored) -> Scored:
    if not ranked:
        return []
    scores = [score for _, score in ranked]
    low, high = min(scores), max(scores)
    if high == low:  # one result, or all alike: all count as the best
        return [(id_, 1.0) for id_, _ in ranked]
    return [(id_, (score - low) / (high - low)) for id_, score in ranked]
