"""`quire search`: one line per hit, through the API or on the local database."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.markup import escape

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
from quire.app.excerpts import excerpt, marked_words

if TYPE_CHECKING:
    from quire.client import Quire
    from quire.client.models import SearchHit, SearchResults


class Searcher(Protocol):
    def search(self, query: str, *, collections: tuple[str, ...], k: int, mode: str) -> SearchResults: ...


class ApiSearcher:
    def __init__(self, client: Quire) -> None:
        self.client = client

    def search(self, query: str, *, collections: tuple[str, ...], k: int, mode: str) -> SearchResults:
        return self.client.search(query, k=k, collections=collections, mode=mode)


class LocalSearcher:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def search(self, query: str, *, collections: tuple[str, ...], k: int, mode: str) -> SearchResults:
        from quire.app.cli_runs import tenant_context
        from quire.app.services import content_environment
        from quire.client.models import SearchResults
        from quire.content.search import Scope
        from quire.content.search import search as run_search

        settings = settings_for("search")
        environment = content_environment(settings, None)
        with tenant_context(settings, self.tenant) as (session, _):
            results = run_search(
                session,
                query=query,
                embedder=environment.embedder,
                scope=Scope(collections=collections),
                k=k,
                mode=mode,
                dense_weight=environment.dense_weight,
                ef_search=environment.search_ef,
            )
        return SearchResults.model_validate(results.model_dump(mode="json"))


@friendly
def search(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for.")],
    collection: CollectionsOption = None,
    k: Annotated[int, typer.Option("-k", metavar="N", help="How many hits.")] = 5,
    mode: Annotated[
        str, typer.Option("--mode", "-m", metavar="MODE", help="hybrid, lexical or dense.")
    ] = "hybrid",
    as_json: JsonOption = False,
    tenant: TenantOption = "default",
) -> None:
    """Search the documents: one line per hit with its title, version, section and passage."""
    client = api_client()
    searcher: Searcher = ApiSearcher(client) if client else LocalSearcher(tenant)
    results = searcher.search(query, collections=tuple(collection or ()), k=k, mode=mode)
    if as_json:
        print_json(results.model_dump(mode="json"))
        return
    if not results.hits:
        out.print("No hits.")
    for rank, hit in enumerate(results.hits, 1):
        out.print(hit_line(rank, hit), highlight=False, soft_wrap=True)
    out.print(f"[dim]searched in {results.took_ms:.0f} ms[/]", highlight=False)


def hit_line(rank: int, hit: SearchHit) -> str:
    """`1. Handbook v1 · Holidays · p. 3  Every employee gets 27 days …` with the query's words in bold."""
    c = hit.citation
    section = list(c.section)
    if section and section[0].casefold() == c.title.casefold():
        section = section[1:]  # the document's own heading says its title again
    where = [f"v{c.version}", *([" > ".join(section)] if section else [])]
    if c.pages:
        where.append(f"p. {', '.join(map(str, c.pages))}")
    passage = escape(excerpt(hit.text, c.snippet, headings=(c.title, *c.section)))
    words = [re.escape(escape(word)) for word in marked_words(c.snippet)]
    if words:  # one pass: a second would find its words inside the first one's tags
        passage = re.sub(rf"(?i)\b({'|'.join(words)})\b", r"[bold]\1[/bold]", passage)
    return f"[bold]{rank}. {escape(c.title)}[/] {escape(' · '.join(where))}  {passage}"
