"""What every `quire` command shares: the consoles, one-line errors, and the settings."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from quire.core.errors import QuireError
from quire.core.settings import Settings, load_settings

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


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


INTERACTIVE = {"ingest", "ask", "search", "runs", "keys", "db", "migrate", "tenant", "tools", "demo"}


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
