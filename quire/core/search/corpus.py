"""The rows one search reads: a table, the joins its filter needs, and the filter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Corpus:
    """Which rows a search may return, as SQL fragments with named parameters.

    Row-level security still decides the tenant: a corpus filters only what a caller asked for
    (live chunks, a collection, memories in effect, the tools a role may use).
    """

    table: str  # the searched table with its alias: "content_chunk c"
    id: str  # the column the index knows the rows by: "c.id"
    embedding: str = ""  # the rows' vector column, for the dense leg: "c.embedding"
    joins: str = ""  # "JOIN memory_item i ON i.id = v.item_id"
    where: str = "true"
    params: Mapping[str, object] = field(default_factory=dict)

    def rows(self) -> str:
        """`FROM ... WHERE ...` of the rows, for a statement to select from."""
        return f"FROM {self.table} {self.joins} WHERE {self.where}"
