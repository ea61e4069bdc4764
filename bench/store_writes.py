"""`python -m bench.store_writes`: how many documents/s the store alone can write.

The ChromaStore is one replica whatever the scale, so its write rate is the ceiling on a tenant's
ingest however many Embedder replicas feed it (README, Scaling). Vectors are made up (random unit
vectors): this measures chromadb, the keyword index and the store's own steps, not the model.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from deployments.api.schemas import Metadata
from deployments.core.config import load_settings
from deployments.storage.tenant_store import TenantStore

WORDS = ["cell", "protein", "gene", "expression", "tumour", "mouse", "patient", "study", "result", "dose"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_240, help="documents written, in two timed halves")
    parser.add_argument("--batch", type=int, default=64, help="documents per write, as /embed/ sends them")
    parser.add_argument("--words", type=int, default=150, help="words per document (a SciFact abstract is ~200)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        store = TenantStore(load_settings(_env_file=None, persist_dir=Path(folder), max_docs=args.docs))
        batches = []
        for start in range(0, args.docs, args.batch):
            ids = [f"doc-{n}" for n in range(start, min(start + args.batch, args.docs))]
            vectors = rng.standard_normal((len(ids), 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            texts = [" ".join(rng.choice(WORDS, args.words)) for _ in ids]
            metadatas: list[Metadata] = [{"n": n} for n in range(len(ids))]
            batches.append((ids, texts, vectors, metadatas))
        half = len(batches) // 2
        for label, part in (("first half", batches[:half]), ("second half", batches[half:])):
            began = time.perf_counter()
            for batch in part:
                store.upsert(*batch)
            seconds = time.perf_counter() - began
            written = sum(len(batch[0]) for batch in part)
            print(f"{label}: {written} documents in batches of {args.batch}: {written / seconds:,.0f}/s")
        store.close()


if __name__ == "__main__":
    main()
