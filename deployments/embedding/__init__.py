"""The model: embedding backends (ONNX Runtime, torch, a hashing fake for tests), ONNX export and
quantisation, chunking, loading the tenant's model, and where queries are embedded."""
