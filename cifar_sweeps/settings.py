"""The one settings class: environment variables with prefix CIFAR_SWEEPS_, flags beat them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Webhook(BaseModel):
    """One of the operator's webhooks: where a sweep's end is announced, and in which form."""

    url: str = Field(max_length=2048)
    format: Literal["json", "slack"] = "json"  # slack: an incoming webhook's {"text": ...}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIFAR_SWEEPS_", extra="ignore")

    # Data source: "torchvision" (download), a cifar-10-batches-py folder or archive,
    # an image-folder folder or tar archive, or "synthetic:N".
    data: str = "torchvision"
    results_dir: Path = Path("results")
    # Any SQLAlchemy URL; empty means a SQLite file under results_dir.
    store_url: str = ""
    api_token: str = ""
    # Limits that keep one request from taking the cluster (checked before anything runs).
    max_num_samples: int = Field(default=1000, gt=0)
    max_epochs: int = Field(default=500, gt=0)
    max_concurrent_trials: int = Field(default=64, gt=0)
    max_running_sweeps: int = Field(default=4, gt=0)
    # Sweeps waiting for a running slot; past it POST /sweeps answers 429 (nothing stored).
    max_queued_sweeps: int = Field(default=100, gt=0)
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    dashboard_url: str = "http://127.0.0.1:8265"
    # Host header values the API answers (JSON list); empty: loopback names when `serve`
    # binds to loopback (a DNS-rebinding page can't reach it), any host otherwise.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Where clients reach the API (e.g. https://sweeps.example.org): links in answers are
    # built from it, never from a request's Host header; empty: links are relative.
    public_base_url: str = ""
    # Where a browser reaches the Ray dashboard (links in answers and on the page), when that
    # is not the address the service itself uses (e.g. http://ray-head:8265 inside compose).
    public_dashboard_url: str = ""
    # Seconds the Ray cluster may stay silent before its active sweeps count as lost
    # (interrupted, resumable): a head restarting answers again well within this.
    cluster_lost_after_s: float = Field(default=30.0, gt=0)
    # Seconds a GET /leaderboard or /sweeps answer is reused for identical requests (0: off).
    cache_ttl_s: float = Field(default=1.0, ge=0)
    # A plan (plan.py) whose worst case is longer than this many hours comes with a warning
    # (201 with `warnings` at POST /sweeps; printed by `cifar-sweeps run`).
    plan_warn_hours: float = Field(default=8.0, gt=0)
    # Free space (MiB) the results folder must have before a sweep starts: checkpoints and
    # Tune's state are written throughout, and a disk that fills mid-sweep loses trials.
    min_free_mb: float = Field(default=200, ge=0)
    # Where pretrained weights are staged (`cifar-sweeps weights fetch|import|list`).
    weights_dir: Path = Path("~/.cache/cifar-sweeps/weights")
    # Where Tune writes trials and checkpoints: a path (shared by all nodes of a cluster) or
    # a URI such as s3://bucket/prefix; empty means <results_dir>/ray.
    storage_path: str = ""
    # Log every sweep to W&B (offline without WANDB_API_KEY), as if each spec said "wandb": true.
    wandb: bool = False
    # W&B's key for sweep drivers (WANDB_API_KEY works too); a job gets it as a file, never
    # in its runtime env (see write_secrets).
    wandb_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CIFAR_SWEEPS_WANDB_API_KEY", "WANDB_API_KEY")
    )
    # W&B's mode (online, offline, disabled; WANDB_MODE works too): empty means online with
    # a key, offline without one.
    wandb_mode: str = Field("", validation_alias=AliasChoices("CIFAR_SWEEPS_WANDB_MODE", "WANDB_MODE"))
    wandb_project: str = Field(
        "cifar-sweeps", validation_alias=AliasChoices("CIFAR_SWEEPS_WANDB_PROJECT", "WANDB_PROJECT")
    )
    # Whether the Ray cluster's drivers see this machine's paths: "shared" sends them the
    # results, data, weights and storage paths resolved here; "own" sends none of them (each
    # node's own CIFAR_SWEEPS_* settings apply: an API apart from its cluster); "auto" is
    # shared for a cluster on this machine (a loopback dashboard), own for any other.
    cluster_paths: Literal["auto", "shared", "own"] = "auto"
    # The most a sweep's data set may take in memory at its image size (MiB): images x size x
    # size x 3 bytes, held by the driver and again by the object store its trials read. A spec
    # past it (e.g. data.image_size 512 over CIFAR-10: 45,000 MiB) is a 422 at plan and submit.
    max_data_mb: float = Field(default=16_384, gt=0)
    # The data cache folder's cap (MiB): decoded and resized data sets, least recently used
    # first out. Read by drivers and trials from the environment too (training/data.py).
    cache_max_mb: float = Field(default=20_480, gt=0)
    # Seconds a throughput probe may take (plan.py); past it the plan's wall time is
    # "unknown", with a warning, remembered for 10 minutes: a loaded machine never stops a run.
    probe_timeout_s: float = Field(default=60.0, gt=0, le=600)
    # The file of probed throughputs (images/s per trial shape, analysis/throughput.py): a
    # property of this machine and its software, not of one results folder, so several
    # results folders on one machine may share one (a probe costs 5-20 s of CPU); empty:
    # <results_dir>/cache/throughput.json.
    throughput_file: Path | None = None
    # Webhooks told when a sweep ends (succeeded, failed, stopped): a JSON object of name to
    # {"url", "format"}; a spec may choose among them by name (`notify`), never give a URL.
    webhooks: dict[str, Webhook] = Field(default_factory=dict, max_length=20)
    # The hosts a webhook may point at (a JSON list): a URL to any other is refused at start.
    webhook_hosts: list[str] = Field(default_factory=list)
    # The key each delivery is signed with (HMAC-SHA256 of the body, in X-Cifar-Sweeps-Signature).
    webhook_secret: SecretStr | None = None
    # Where `plan --replay TASK` finds tabulated tasks (<task>.csv and .json, written by
    # benchmarks/tabulate.py); empty: the tables committed in the source checkout.
    replay_tables: str = ""
    # Where the Ray cluster's pods mount the drivers' secrets (the store URL, the W&B key) as
    # files, e.g. a Kubernetes Secret at /var/run/secrets/cifar-sweeps: jobs are told to read
    # them there and the service writes no copy onto the shared results volume.
    cluster_secrets_dir: str = ""
    # Test-only fault injection (the trial keys fail_at_epoch / fault): off, they are unknown
    # keys like any other. The test suite turns it on; never set it in production.
    test_hooks: bool = False

    @field_validator("data")
    @classmethod
    def _absolute_data_path(cls, v: str) -> str:
        """A relative local path becomes absolute: Ray job drivers run in another folder."""
        if not v.startswith(("torchvision", "synthetic:")) and Path(v).expanduser().exists():
            return str(Path(v).expanduser().resolve())
        return v

    @model_validator(mode="after")
    def _webhooks_to_allowed_hosts(self):
        from urllib.parse import urlsplit

        for name, hook in self.webhooks.items():
            url = urlsplit(hook.url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"webhooks.{name}: {hook.url[:80]!r} is no http(s) URL")
            if url.hostname not in self.webhook_hosts:
                raise ValueError(
                    f"webhooks.{name}: host {url.hostname!r} is not in CIFAR_SWEEPS_WEBHOOK_HOSTS "
                    f"({', '.join(self.webhook_hosts) or 'empty'})"
                )
        return self

    @field_validator("weights_dir")
    @classmethod
    def _absolute_weights_dir(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("throughput_file", mode="before")
    @classmethod
    def _absolute_throughput_file(cls, v: object) -> Path | None:
        # Empty: the default; a relative path is resolved here, since a job's driver runs elsewhere.
        return Path(str(v)).expanduser().resolve() if v not in (None, "") else None

    @property
    def cache_dir(self) -> Path:
        return self.results_dir / "cache"

    @property
    def throughputs(self) -> Path:
        """Where probed throughputs are kept (`throughput_file`, or the results folder's)."""
        return self.throughput_file or self.cache_dir / "throughput.json"

    def storage_root(self) -> Path | str:
        """Tune's storage: a URI as given, or an absolute local path."""
        if "://" in self.storage_path:
            return self.storage_path
        return Path(self.storage_path or self.results_dir / "ray").resolve()

    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.results_dir / 'cifar_sweeps.db').resolve()}"

    def resolved_wandb_mode(self) -> str:
        return self.wandb_mode or ("online" if self.wandb_api_key else "offline")

    def secret_values(self) -> list[str]:
        """The secrets this service knows: its token, the W&B key, the store's password, and
        Ray's token from the environment (what no answer may show)."""
        from sqlalchemy.engine import make_url

        out = [self.api_token, os.environ.get("RAY_AUTH_TOKEN", "")]
        if self.webhook_secret is not None:
            out.append(self.webhook_secret.get_secret_value())
        if self.wandb_api_key is not None:
            out.append(self.wandb_api_key.get_secret_value())
        try:
            out.append(make_url(self.resolved_store_url()).password or "")
        except Exception:
            out.append(self.store_url)
        return [v for v in out if v and len(v) >= 4]

    def redact(self, text: str | None) -> str | None:
        """`text` (a job's log tail, an error) without this service's secrets, any URL's
        password, or the value of a variable whose name says it is secret."""
        if not text:
            return text
        for secret in self.secret_values():
            text = text.replace(secret, "[redacted]")
        text = _URL_PASSWORD.sub(r"\1[redacted]@", text)
        return _SECRET_VARIABLE.sub(r"\1=[redacted]", text)

    def scrub(self, text: str | None) -> str | None:
        """`text` for an HTTP answer: redacted (above), and with no server detail: an absolute
        path becomes its last part, a URL keeps its scheme and path but not its user or host,
        and a database driver's quoted host and user become placeholders. The server logs
        the full text."""
        text = self.redact(text)
        if not text:
            return text
        text = _URL_AUTHORITY.sub(r"\1[host]", text)
        text = _DB_NAMED.sub(lambda m: f'{m[1]} "[{_DB_PLACEHOLDER[m[1].split()[-1].lower()]}]"', text)
        return _ABS_PATH.sub(lambda m: m[1] or "[path]", text)

    def job_env(self, shared_paths: bool = True) -> tuple[dict[str, str], dict[str, str]]:
        """Every setting as the variable a Ray job's driver reads it from, built from the
        fields themselves so that none is forgotten; and, apart, the secrets (the API token,
        the W&B key, a store URL with a password), which travel as files (write_secrets).
        A cluster that does not share this machine's paths (`shared_paths` False) gets no
        path resolved here, and only the settings set here on purpose: its own apply."""
        env, secrets = {}, {}
        for name in type(self).model_fields:
            if not shared_paths and (name in CLUSTER_OWN or name not in self.model_fields_set):
                continue
            value = getattr(self, name)
            if name == "store_url" and shared_paths:
                value = self.resolved_store_url()
            if isinstance(value, SecretStr) or name == "api_token" or (name == "store_url" and url_has_password(value)):
                raw = value.get_secret_value() if isinstance(value, SecretStr) else value
                if raw and name != "api_token":  # the driver never serves the API
                    secrets[name] = raw
                continue
            if value is not None:
                env[f"CIFAR_SWEEPS_{name.upper()}"] = _env_text(value)
        return env, secrets


# What a cluster apart from the API keeps its own of: paths on its nodes, and the API's own
# serving settings.
CLUSTER_OWN = frozenset(
    {"results_dir", "data", "weights_dir", "storage_path", "cluster_paths", "api_token", "throughput_file"}
)

# scheme://user:PASSWORD@host, and NAME=VALUE where the name says token, key, password or secret.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")
_SECRET_VARIABLE = re.compile(r"\b([A-Z0-9_]*(?:TOKEN|API_KEY|PASSWORD|SECRET)[A-Z0-9_]*)=\S+")

# Files named like a setting's variable in lower case (cifar_sweeps_store_url, ...), each
# holding that secret: how a Ray job's driver gets the store password and the W&B key
# without them appearing in its runtime env, which the Jobs API and the dashboard show.
SECRETS_DIR_ENV = "CIFAR_SWEEPS_SECRETS_DIR"


def load_settings(**over) -> Settings:
    """The settings: flags (`over`) beat variables, which beat secret files in
    $CIFAR_SWEEPS_SECRETS_DIR, which beat the defaults."""
    d = os.environ.get(SECRETS_DIR_ENV)
    return Settings(_secrets_dir=d if d and Path(d).is_dir() else None, **over)


def _env_text(value) -> str:
    """A setting's value as pydantic-settings reads it back from a variable."""
    import json

    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def url_has_password(url: str) -> bool:
    from sqlalchemy.engine import make_url

    try:
        return bool(make_url(url).password)
    except Exception:  # not a URL SQLAlchemy can read: treat it as secret
        return True


# A URL's user, password, host and port (scheme://user:pw@host:port): the authority goes.
_URL_AUTHORITY = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s\"'@]*@?[^/\s\"'@]+(?=[/\s\"']|$)", re.IGNORECASE)
# libpq's and PyMySQL's words: connection to server at "10.0.0.5", ... for user "sweeps".
_DB_NAMED = re.compile(r'\b(server at|host|for user|user|database|role)\s+"[^"]*"', re.IGNORECASE)
_DB_PLACEHOLDER = {"at": "host", "host": "host", "user": "user", "role": "user", "database": "database"}
# An absolute POSIX path of two or more parts (not a URL's path: no scheme or host before it).
_ABS_PATH = re.compile(r"(?<![\w:/.\]\[-])/(?:[^\s/\"'`:;,()\[\]]+/)+([^\s/\"'`:;,()\[\]]*)")


def write_secrets(results_dir: Path, values: dict[str, str]) -> Path:
    """Write each secret to <results_dir>/.secrets/cifar_sweeps_<name>, readable by this
    user alone (folder 0700, files 0600); returns the folder, for SECRETS_DIR_ENV."""
    d = Path(results_dir).resolve() / ".secrets"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    for name, value in values.items():
        fd = os.open(d / f"cifar_sweeps_{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
    return d


# ------------------------------------------------------------ the environment of child processes
# (subprocs.py's children, the predict worker, trials' data cache): read and written here only.

# What a child may inherit: the locale, the path to find tools, the device choice. Nothing
# else (secrets live in CIFAR_SWEEPS_*, WANDB_*, RAY_* and the store's URL).
CHILD_KEEP_ENV = (
    "PATH",
    "LD_LIBRARY_PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
CHILD_MEMORY_ENV = "CIFAR_SWEEPS_CHILD_MEMORY_MB"
SECRET_PREFIXES = ("CIFAR_SWEEPS_", "WANDB_", "RAY_AUTH", "AWS_", "GOOGLE_", "AZURE_")


def child_env(home: str, memory_mb: int) -> dict[str, str]:
    """A child's whole environment: the allow-list above, hubs offline, its own home."""
    env = {k: os.environ[k] for k in CHILD_KEEP_ENV if k in os.environ}
    return {**env, **OFFLINE_ENV, "HOME": home, "TMPDIR": home, CHILD_MEMORY_ENV: str(memory_mb)}


def child_memory_mb() -> int:
    """In a child: the data memory its parent gave it (MiB; 0: none set)."""
    return int(os.environ.get(CHILD_MEMORY_ENV, "0") or 0)


def drop_secrets_from_env() -> None:
    """In a worker that runs plug-in code: no secret left in its environment, hubs offline."""
    for name in [k for k in os.environ if k.startswith(SECRET_PREFIXES)]:
        del os.environ[name]
    os.environ.update(OFFLINE_ENV)


def data_cache_max_mb(default: float) -> float:
    """CIFAR_SWEEPS_CACHE_MAX_MB where data loads without a Settings object (drivers, trials)."""
    return float(os.environ.get("CIFAR_SWEEPS_CACHE_MAX_MB") or default)
