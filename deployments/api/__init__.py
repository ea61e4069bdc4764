"""The Ingress's FastAPI app: routes, request and response schemas, plan limits, middleware (API
key, rate limits, body size), the one error mapper, and the service logic behind the routes."""
