"""What the schema-driven fuzzing (in-process and against the running service) checks, and against
which document."""

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deployments.api.app import create_api
from deployments.api.handles import EmbedderCalls, StoreCalls
from deployments.api.service import TenantService
from deployments.core.config import load_settings
from deployments.embedding.backends import HashingBackend

# Not `positive_data_acceptance`: a schema-valid request may still be refused, as documented, by a
# rule the schema does not express (the plan's limits, the quota, "text must not be blank").
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# The document every instance serves: the routes do not depend on the settings or the store; each
# test checks that the app it fuzzes serves exactly this. (Built here because schemathesis' pytest
# fixture-based loader is broken under pytest 9.)
SERVICE = TenantService(
    load_settings(_env_file=None, plan="starter"), EmbedderCalls(None), StoreCalls(None), HashingBackend()
)
DOCUMENT = create_api(SERVICE).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
