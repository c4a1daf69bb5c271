"""What every `quire` command shares: the consoles, one-line errors, the settings, the common
options, and the choice between the API and the local database."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from quire.core.errors import ConfigurationError, QuireError
from quire.core.settings import Settings, load_settings

if TYPE_CHECKING:  # httpx and the client's models: only commands that talk to the API load them
    from quire.client import Quire

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
TenantOption = Annotated[
    str, typer.Option("--tenant", "-t", metavar="NAME", help="Tenant name (local database only).")
]
CollectionsOption = Annotated[
    list[str] | None, typer.Option("--collection", "-c", metavar="NAME", help="Only these collections.")
]


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def friendly(command: F) -> F:
    """Turn Quire's errors into one readable line and a non-zero exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except QuireError as error:
            fail(str(error))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


INTERACTIVE = {
    "ingest",
    "ask",
    "search",
    "runs",
    "keys",
    "memories",
    "db",
    "migrate",
    "tenant",
    "tools",
    "demo",
}


def settings_for(command: str) -> Settings:
    from quire.agent.config import load_models
    from quire.app.logs import configure_logging

    settings = load_settings()
    # The model settings are read by the agent package, which core cannot import: checked here
    # as well, every command refuses them at start-up, not only the ones that build a model router.
    load_models(models_file=settings.models, model=settings.model)
    if command in INTERACTIVE and settings.log_level == "INFO":
        # Commands a person watches show their own progress; INFO lines would interleave with it.
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings, process_name=f"quire-{command}")
    return settings


def api_client() -> Quire | None:
    """The API client when QUIRE_URL and QUIRE_API_KEY are both set (the command then works
    through the API, not on the local database); None when neither is."""
    url, key = os.environ.get("QUIRE_URL", ""), os.environ.get("QUIRE_API_KEY", "")
    if not url:
        return None
    if not key:
        raise ConfigurationError(
            "QUIRE_URL is set but QUIRE_API_KEY is not: set both to work through the API"
        )
    from quire.client import Quire

    return Quire(url, key)


def print_json(value: Any) -> None:
    """JSON on stdout, unstyled, so that `| jq` reads it."""
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def hide_type_names() -> None:
    """Help shows an option's metavar, or nothing: typer 0.2x shows Python annotations instead
    (`<bool>` beside --help, `<list[Path]>` beside arguments), which tell a user nothing."""
    from typer import core

    def metavar_only(self: Any, ctx: Any) -> str | None:
        return self.metavar if self.metavar is not None else None

    def nothing(self: Any, ctx: Any) -> str | None:
        return None  # an argument's metavar is already its name in the first column

    core.TyperArgument.display_type_rich = nothing  # type: ignore[method-assign]
    core.TyperOption.display_type_rich = metavar_only  # type: ignore[method-assign]
