"""The tenant's data (no Ray, no FastAPI): the chromadb collections and their writes under the quota,
search in three modes and ranking, chunks, the keyword index, index checks and rebuild, snapshots."""
