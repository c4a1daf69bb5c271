"""`quire ask`: through the API (start a run, follow its server-sent events) or on the local database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from quire.app.ask_output import Asker, follow
from quire.app.cli_common import (
    CollectionsOption,
    JsonOption,
    TenantOption,
    api_client,
    friendly,
    out,
    print_json,
    settings_for,
)

if TYPE_CHECKING:
    from quire.client import Quire
    from quire.client.models import AgentRun, RunEvent


class ApiAsker:
    note = ""

    def __init__(self, client: Quire) -> None:
        self.client = client

    def start(self, question: str, *, collections: tuple[str, ...], route: str | None) -> str:
        return self.client.start_run(question, collections=collections, route=route, stream=True).id

    def events(self, run_id: str) -> Iterator[RunEvent]:
        return self.client.events(run_id)

    def result(self, run_id: str) -> AgentRun:
        return self.client.agent_run(run_id)


@friendly
def ask(
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question.")],
    collection: CollectionsOption = None,
    route: Annotated[
        str | None, typer.Option("--route", "-r", metavar="ROUTE", help="Model route (QUIRE_MODELS).")
    ] = None,
    as_json: JsonOption = False,
    tenant: TenantOption = "default",
) -> None:
    """Ask the agent; see its steps as it works, then the answer and its sources (--json: the
    run, with its answer and citations, once it ends)."""
    client = api_client()
    collections = tuple(collection or ())
    console = None if as_json else out
    if client is not None:
        run = follow(ApiAsker(client), question, collections=collections, route=route, console=console)
    else:
        from quire.app.ask import LocalAsker

        with LocalAsker(settings_for("ask"), tenant) as local:
            asker: Asker = local
            run = follow(asker, question, collections=collections, route=route, console=console)
    if as_json:  # the run as the API gave it, less its step log (`quire runs show ID --json` has it)
        print_json(run.model_dump(mode="json", exclude_unset=True, exclude={"steps"}))
    if not run.answer:
        raise typer.Exit(1)
