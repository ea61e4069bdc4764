"""chromedb-instance. This folder holds the three Ray Serve deployments (ingress.py, embedder.py,
store.py), the launcher (launch.py) and the operator's restore command (snapshot.py): Ray concerns
only. The work they do lives in the rooms below, each importing only the rooms under it
(`make lint` checks it, pyproject.toml [tool.importlinter]):

    api/        the Ingress's FastAPI app: routes, schemas, limits, middleware, the error mapper,
                the service logic behind the routes
    embedding/  the model: backends, ONNX export, chunking, loading, query encoders
    storage/    the tenant's chromadb collection, keyword index, ranking, index checks, snapshots
    runtime/    what the processes share: calls between deployments, metrics, free ports
    core/       no Ray, FastAPI or chromadb: settings, plans, errors, shared types
"""
