import pickle

import cloudpickle

from deployments.core.errors import InternalFailure, InvalidFilter, QuotaExceeded, ServiceError


def test_errors_keep_status_name_and_field_across_pickling():
    error = QuotaExceeded("quota is 3", field="documents")
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        copy = loads(dumps(error))
        assert isinstance(copy, QuotaExceeded)
        assert (copy.status_code, copy.to_body()) == (
            403,
            {"error": "quota_exceeded", "message": "quota is 3", "field": "documents"},
        )


def test_every_error_is_a_client_or_availability_error_but_the_one_that_says_it_is_ours():
    for cls in ServiceError.__subclasses__():
        assert 400 <= cls.status_code < 600 and (cls.status_code != 500 or cls is InternalFailure)
    assert InvalidFilter("x").to_body() == {"error": "invalid_filter", "message": "x"}
