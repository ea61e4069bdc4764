"""The typed calls (deployments.api.handles) say exactly what the deployments' methods take and
return: mypy checks every call against the former, this holds them to the latter."""

import inspect
import typing
from typing import cast

import pytest
from ray.serve import Deployment

from deployments.api.handles import EmbedderCalls, StoreCalls
from deployments.embedder import Embedder
from deployments.store import ChromaStore


def _methods(calls: type) -> list[str]:
    return [name for name, _ in inspect.getmembers(calls, inspect.iscoroutinefunction) if not name.startswith("_")]


@pytest.mark.parametrize(("calls", "deployment"), [(EmbedderCalls, Embedder), (StoreCalls, ChromaStore)])
def test_each_typed_call_matches_the_deployments_method(calls: type, deployment: object) -> None:
    served = cast(Deployment, deployment).func_or_class
    names = _methods(calls)
    assert names, f"{calls.__name__} offers no calls"
    for name in names:
        method = getattr(served, name, None)
        assert method is not None, f"{calls.__name__}.{name} calls a method the deployment lacks"
        ours, theirs = inspect.signature(getattr(calls, name)), inspect.signature(method)
        assert list(ours.parameters) == list(theirs.parameters), f"{name}: parameters differ"
        assert typing.get_type_hints(getattr(calls, name)) == typing.get_type_hints(method), f"{name}: types differ"
