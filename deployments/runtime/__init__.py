"""What the service's processes share at run time: calls between deployments (time limits, Ray's
errors as 503s), Prometheus metrics through Ray, free ports for the launcher."""
