"""The benchmark's data: real SciFact passages and queries, plus filler up to the collection size.

SciFact (`../shared/eval/scifact`, BEIR format) is read in place, never copied into the project.
The filler is real text too: sentences and runs of sentences cut from the same abstracts, embedded
once with the real model and cached under `.bench-cache/` (never committed).
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deployments.core.types import Vectors
from deployments.embedding.backends import EmbeddingBackend

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


@dataclass
class Passage:
    id: str
    text: str


@dataclass
class Workload:
    passages: list[Passage]  # ingested and timed
    queries: list[str]  # searched and timed
    filler_ids: list[str]
    filler_texts: list[str]
    filler_vectors: Vectors


def read_scifact(folder: Path) -> tuple[list[Passage], list[str]]:
    """The corpus (title and abstract as one passage) and the test queries, in file order."""
    passages = []
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        passages.append(Passage(f"scifact-{row['_id']}", f"{row['title']} {row['text']}".strip()))
    test_ids = {line.split("\t")[0] for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    queries = []
    for line in (folder / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["_id"] in test_ids:
            queries.append(row["text"])
    return passages, queries


def filler_texts(passages: list[Passage], count: int) -> list[str]:
    """`count` distinct texts: every sentence of every passage, then every run of two, three, ..."""
    sentences = [_SENTENCE_END.split(p.text) for p in passages]
    texts: list[str] = []
    seen: set[str] = set()
    for run in range(1, 64):
        for parts in sentences:
            for start in range(len(parts) - run + 1):
                text = " ".join(parts[start : start + run])
                if text not in seen:
                    seen.add(text)
                    texts.append(text)
                    if len(texts) == count:
                        return texts
    raise ValueError(f"the corpus yields only {len(texts)} filler texts, {count} asked")


def load_workload(eval_dir: Path, total_docs: int, backend: EmbeddingBackend, cache_dir: Path) -> Workload:
    passages, queries = read_scifact(eval_dir / "scifact")
    count = total_docs - len(passages)
    texts = filler_texts(passages, count)
    cache = cache_dir / f"filler-{backend.name.replace('/', '_')}-{count}.npy"
    if cache.is_file():
        vectors = np.load(cache)
    else:
        print(f"embedding {count} filler texts once (cached in {cache})", flush=True)
        parts = []
        for start in range(0, count, 10_000):
            parts.append(backend.encode(texts[start : start + 10_000]))
            print(f"  {start + len(parts[-1])}/{count}", flush=True)
        vectors = np.concatenate(parts)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return Workload(passages, queries, [f"filler-{i}" for i in range(count)], texts, vectors)
