"""Quire's configuration: one class, read from `QUIRE_*` environment variables at the edge."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from quire.core.errors import ConfigurationError
from quire.core.outbound import parse_allowlist

ENV_PREFIX = "QUIRE_"
# How alike (difflib's ratio) an unknown variable's name must be to a setting's to be suggested:
# one letter dropped or swapped in a short name, not a shared letter or two.
SUGGESTION_CUTOFF = 0.8

# The dense leg's weight in each hybrid search (0: lexical only, 1: dense only), tuned on each
# benchmark's tuning queries: content search on SciFact's train queries (bench/retrieval.py),
# memory recall on two LoCoMo conversations (bench/memory.py), the tool catalog on MetaTool's
# tuning split (bench/tools.py). Functions that search default to them; `app` passes the settings.
SEARCH_DENSE_WEIGHT = 0.7
RECALL_DENSE_WEIGHT = 0.5
TOOL_SEARCH_DENSE_WEIGHT = 0.6
TOOL_SEARCH_WORD_WEIGHT = 0.4  # added on top of BM25's and the dense leg's (catalog_search)


def default_data_dir() -> Path:
    """Where Quire keeps its embedded database and blobs when QUIRE_DATA_DIR is unset.

    The embedded PostgreSQL opens every parent folder of its data folder to its own system
    user, so root gets `/var/lib/quire` rather than a folder under `/root`.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/quire")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "quire"


class RunBudgetMaximum(BaseModel):
    """The most one run started by a role may use of each budget limit (see quire.agent.costs.Budget)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(gt=0, le=10**12)
    max_cost_usd: float = Field(gt=0, le=10**9)
    max_steps: int = Field(gt=0, le=10**6)
    max_seconds: float = Field(gt=0, le=10**7)


class RetrySetting(BaseModel):
    """How a kind of step is tried again: attempts in all, and exponential back-off with jitter
    (attempt n waits about base_delay * 2**(n-1) seconds, at most max_delay)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(ge=1, le=100)
    base_delay: float = Field(ge=0, le=3600)
    max_delay: float = Field(ge=0, le=86_400)


# Model calls wait long enough for a provider's blip to pass; tools are quicker to come back.
RETRY_DEFAULTS = {
    "model_retry": RetrySetting(max_attempts=4, base_delay=2.0, max_delay=60.0),
    "tool_retry": RetrySetting(max_attempts=3, base_delay=0.5, max_delay=5.0),
}
TOOL_TIMEOUT_SECONDS = 60.0
RETRY_HELP = (
    "How {kind} steps are tried again, as JSON: max_attempts, base_delay, max_delay (seconds; "
    "those left out keep their defaults)."
)


# A reader gets what every run got before there were maximums; the others, room for longer work.
RUN_BUDGET_MAXIMUMS = {
    "reader": RunBudgetMaximum(max_tokens=200_000, max_cost_usd=1.0, max_steps=24, max_seconds=600),
    "contributor": RunBudgetMaximum(max_tokens=500_000, max_cost_usd=2.0, max_steps=40, max_seconds=1200),
    "reviewer": RunBudgetMaximum(max_tokens=500_000, max_cost_usd=2.0, max_steps=40, max_seconds=1200),
    "admin": RunBudgetMaximum(max_tokens=2_000_000, max_cost_usd=10.0, max_steps=100, max_seconds=3600),
}
DEFAULT_TENANT_DAILY_BUDGET_USD = 20.0
RUN_BUDGET_HELP = (
    "The most a run started by a {role} may use, as JSON: max_tokens, max_cost_usd, max_steps, "
    "max_seconds (those left out keep their defaults)."
)


class Settings(BaseSettings):
    """Every setting Quire reads; each maps to the environment variable `QUIRE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str = Field(
        default="",
        description="PostgreSQL 15+ with pgvector, as postgresql://…; empty runs the embedded one.",
    )
    database_owner_url: str = Field(
        default="",
        repr=False,
        description="The role that owns the tables, for migrations only (default: QUIRE_DATABASE_URL).",
    )
    broker_url: str = Field(
        default="",
        description="redis://… or amqp://…; empty queues work in the PostgreSQL database itself.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder for the embedded database and the blob store.",
    )
    blob_store: str = Field(
        default="",
        description="Where uploads' bytes live: empty (<data dir>/blobs), a folder, or 'postgres'.",
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="all-MiniLM-L6-v2 (bundled) or the path of a sentence-transformers model.",
    )
    embedding_runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="onnx (ONNX Runtime, CPU) or torch (sentence-transformers, for a GPU).",
    )
    model_cache_dir: Path | None = Field(
        default=None,
        description="Folder for files derived from the embedding model (its ONNX export); "
        "default ~/.cache/quire/models.",
    )
    api_bind: str = Field(default="127.0.0.1:8000", description="host:port the API listens on.")
    worker_processes: int = Field(default=1, ge=1, le=64, description="Worker processes.")
    # Dramatiq's own default. With 4, an ingest of 240 files left the cores idle 8 % of the time
    # (threads wait their turn at the one parsing child); with 8 documents in flight, 3 %
    # (bench/ingest).
    worker_threads: int = Field(default=8, ge=1, le=256, description="Threads per worker process.")
    lease_seconds: float = Field(
        default=6.0, ge=1, le=600, description="How long a worker's hold on a run lasts unrenewed."
    )
    sweep_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often each worker looks for due or orphaned runs.",
    )
    max_recoveries: int = Field(
        default=5, ge=1, le=100, description="Lost workers in a row before a run is failed."
    )
    max_upload_mb: float = Field(
        default=100, gt=0, le=100_000, description="Largest upload accepted, in MiB (413 above)."
    )
    max_request_kb: int = Field(
        default=1024,
        ge=1,
        le=1024 * 1024,
        description="Largest request body on every route but uploads, in KiB (413 above).",
    )
    parse_timeout_seconds: float = Field(
        default=120, gt=0, le=3600, description="Time limit for parsing one file."
    )
    parse_memory_mb: int = Field(
        default=2048, ge=128, le=65536, description="Memory limit of the parsing child, in MiB."
    )
    parse_children: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Files a worker process parses at once, each in a child (0: one per core).",
    )
    parse_range_pages: int = Field(
        default=25,
        ge=0,
        le=10_000,
        description="Long PDFs, Word files and HTML pages are parsed this many pages at a time, "
        "each range a step with its own time limit (0: whole files).",
    )
    search_ef: int = Field(default=100, ge=10, le=1000, description="HNSW ef_search for queries.")
    search_dense_weight: float = Field(
        default=SEARCH_DENSE_WEIGHT, ge=0, le=1, description="Weight of the dense leg in document search."
    )
    recall_dense_weight: float = Field(
        default=RECALL_DENSE_WEIGHT, ge=0, le=1, description="Weight of the dense leg in memory recall."
    )
    tool_search_dense_weight: float = Field(
        default=TOOL_SEARCH_DENSE_WEIGHT,
        ge=0,
        le=1,
        description="Weight of the dense leg in the tool catalog's search (find_tools).",
    )
    tool_search_word_weight: float = Field(
        default=TOOL_SEARCH_WORD_WEIGHT,
        ge=0,
        le=1,
        description="Weight of the static word-vector leg in find_tools, on top of the other two's.",
    )
    models: str = Field(default="", description="Path of a TOML file of model targets and routes.")
    model: str = Field(default="", description="One model for the simple case, as provider:model.")
    rate_limit_per_minute: int = Field(
        default=600, ge=0, le=1_000_000, description="Requests per minute per API key (0: no limit)."
    )
    console_rate_limit_per_minute: int = Field(
        default=60, ge=0, le=1_000_000, description="Console forms per minute per session (0: no limit)."
    )
    login_rate_limit_per_minute: int = Field(
        default=20,
        ge=0,
        le=1_000_000,
        description="Failed console logins per minute per client address (0: no limit).",
    )
    run_budget_reader: RunBudgetMaximum = Field(
        default=RUN_BUDGET_MAXIMUMS["reader"], description=RUN_BUDGET_HELP.format(role="reader")
    )
    run_budget_contributor: RunBudgetMaximum = Field(
        default=RUN_BUDGET_MAXIMUMS["contributor"], description=RUN_BUDGET_HELP.format(role="contributor")
    )
    run_budget_reviewer: RunBudgetMaximum = Field(
        default=RUN_BUDGET_MAXIMUMS["reviewer"], description=RUN_BUDGET_HELP.format(role="reviewer")
    )
    run_budget_admin: RunBudgetMaximum = Field(
        default=RUN_BUDGET_MAXIMUMS["admin"], description=RUN_BUDGET_HELP.format(role="admin")
    )
    tenant_daily_budget_usd: float = Field(
        default=DEFAULT_TENANT_DAILY_BUDGET_USD,
        ge=0,
        lt=10**12,
        description="Daily model spend, in USD, of a tenant that set no budget of its own (0: none).",
    )
    model_retry: RetrySetting = Field(
        default=RETRY_DEFAULTS["model_retry"], description=RETRY_HELP.format(kind="model call")
    )
    tool_retry: RetrySetting = Field(
        default=RETRY_DEFAULTS["tool_retry"], description=RETRY_HELP.format(kind="tool call")
    )
    tool_timeout_seconds: float = Field(
        default=TOOL_TIMEOUT_SECONDS,
        gt=0,
        le=86_400,
        description="How long a tool call may take before its attempt is abandoned.",
    )
    metrics_token: str = Field(
        default="", repr=False, description="Bearer token /metrics requires (else loopback only)."
    )
    otel_exporter: Literal["", "console", "otlp"] = Field(
        default="", description="Where OpenTelemetry traces go: '' (off), 'console' or 'otlp'."
    )
    otel_endpoint: str = Field(default="", description="OTLP/HTTP endpoint for traces.")
    console_secret: str = Field(
        default="",
        repr=False,
        description="Key that signs console sessions; set the same one on every API host.",
    )
    secret_key: str = Field(
        default="",
        repr=False,
        description="Root of the keys that sign tenant transactions and encrypt stored credentials; "
        "set the same one on every host (default: a random key in the data folder).",
    )
    api_key: str = Field(default="", repr=False, description="The API key `quire mcp` serves as.")
    mcp_allow_stdio: bool = Field(
        default=False,
        description="Let tenant admins add stdio MCP servers over the API (they run commands on workers).",
    )
    outbound_allow: str = Field(
        default="",
        description="Comma-separated CIDR networks of internal addresses Quire may connect to on a "
        "tenant's behalf (MCP servers inside your network), e.g. 10.20.0.0/16.",
    )
    program_modules: str = Field(
        default="", description="Comma-separated modules to import for extra durable programs."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of every Quire process."
    )
    log_format: Literal["text", "json"] = Field(default="text", description="Log line format.")

    @field_validator("console_secret", "secret_key")
    @classmethod
    def _check_console_secret(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters (try: openssl rand -hex 32)")
        return value

    @field_validator("outbound_allow")
    @classmethod
    def _check_outbound_allow(cls, value: str) -> str:
        parse_allowlist(value)
        return value

    @field_validator(
        "run_budget_reader",
        "run_budget_contributor",
        "run_budget_reviewer",
        "run_budget_admin",
        mode="before",
    )
    @classmethod
    def _fill_run_budget(cls, value: Any, info: ValidationInfo) -> Any:
        # A maximum that names some limits keeps its role's defaults for the others.
        if isinstance(value, dict):
            role = (info.field_name or "").removeprefix("run_budget_")
            return {**RUN_BUDGET_MAXIMUMS[role].model_dump(), **value}
        return value

    @field_validator("model_retry", "tool_retry", mode="before")
    @classmethod
    def _fill_retry(cls, value: Any, info: ValidationInfo) -> Any:
        # A policy that names some of its numbers keeps the defaults of the others.
        if isinstance(value, dict):
            return {**RETRY_DEFAULTS[info.field_name or ""].model_dump(), **value}
        return value

    @property
    def run_budget_maximums(self) -> dict[str, RunBudgetMaximum]:
        """Each role's run budget maximum, by role name."""
        return {
            "reader": self.run_budget_reader,
            "contributor": self.run_budget_contributor,
            "reviewer": self.run_budget_reviewer,
            "admin": self.run_budget_admin,
        }

    @field_validator("api_bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port, for example 127.0.0.1:8000")
        return value

    @field_validator("database_url", "database_owner_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("expected a postgresql:// URL, or nothing for the embedded database")
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError("expected redis://… or amqp://…, or nothing for the PostgreSQL queue")
        return value

    @property
    def api_host(self) -> str:
        return self.api_bind.rpartition(":")[0]

    @property
    def api_port(self) -> int:
        return int(self.api_bind.rpartition(":")[2])

    @property
    def embedded_database(self) -> bool:
        return not self.database_url


def suggest_setting(name: str) -> str | None:
    """The setting an unknown `QUIRE_…` variable was probably meant to be, if one is close.

    Names are compared without the prefix every one of them shares (with it, QUIRE_BOGUS looks
    70 % like QUIRE_MODELS): a misspelling (QUIRE_DATABSE_URL) or the start of exactly one
    setting's name (QUIRE_BROKER) is a suggestion; anything further is left unexplained.
    """
    typed = name.upper().removeprefix(ENV_PREFIX)
    fields = [field.upper() for field in Settings.model_fields]
    close = difflib.get_close_matches(typed, fields, n=1, cutoff=SUGGESTION_CUTOFF)
    if close:
        return ENV_PREFIX + close[0]
    extended = [field for field in fields if field.startswith(typed + "_")]
    return ENV_PREFIX + extended[0] if len(extended) == 1 else None


# Read by the Python client (the CLI's API mode: which server to call), never by the server.
CLIENT_VARIABLES = frozenset({"QUIRE_URL"})


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment, turning every mistake into one readable error."""
    unknown = [
        name
        for name in os.environ
        if name.startswith(ENV_PREFIX)
        and name[len(ENV_PREFIX) :].lower() not in Settings.model_fields
        and name not in CLIENT_VARIABLES
    ]
    if unknown:
        known = [ENV_PREFIX + field.upper() for field in Settings.model_fields]
        hints = []
        for name in unknown:
            meant = suggest_setting(name)
            hints.append(f"{name} (did you mean {meant}?)" if meant else name)
        raise ConfigurationError(
            "unknown Quire setting: " + ", ".join(hints) + "; known ones: " + ", ".join(known)
        )
    try:
        return Settings(**overrides)
    except SettingsError as error:
        # A JSON setting that is not JSON; pydantic-settings names its field only in the message.
        found = re.search(r'field "(\w+)"', str(error))
        name = ENV_PREFIX + found.group(1).upper() if found else "a JSON setting"
        raise ConfigurationError(f"invalid setting {name}: expected a JSON object") from None
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            field = str(detail["loc"][0]) if detail["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {detail['msg']}")
        raise ConfigurationError("invalid setting " + "; ".join(problems)) from None
