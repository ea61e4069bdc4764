"""The tenant's data: its chromadb collections (documents and chunks), writes under the quota and
the write lock, four-way search and ranking, the keyword index, index checks and snapshots."""
