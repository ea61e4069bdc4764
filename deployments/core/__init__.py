"""No Ray, FastAPI or chromadb: the one settings object, the plans, the one error model and the
types every room passes around."""
