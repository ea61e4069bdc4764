"""chromedb-instance: the per-tenant vector search service (Ray Serve + chromadb)."""
