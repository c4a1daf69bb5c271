"""The authorization matrix: who may call every operation of the API, every console page and
form, and every MCP tool; walked with every role against the caller's own objects, another
person's, and another tenant's (issue 16; docs/security.md names this file).

`RULES` holds one entry per operation. `test_every_route_declares_its_rule` fails when a route
has none, so a new route must say here who may call it. `test_the_matrix` builds a world of two
tenants (a person of every role, and another of every role, in the first; one of every role in
the second), then for each entry, role and case sends the request and checks the status; where
it was refused, it checks that the database did not change.

Cases: "own" is the caller's own object (or the tenant's, for objects that belong to the whole
tenant), "other" is another person's in the same tenant, "foreign" is another tenant's. Scopes:
- TENANT: the object belongs to the tenant: own and other are allowed, foreign is 404.
- OWNER: the object belongs to a person: own is allowed; other is 404 unless the caller's role
  sees everyone's (`sees`, administrators by default); foreign is 404.
- CALLER: no object is named (lists, creations): the call is made once; the answer must not
  hold any of the foreign tenant's ids.
- OPEN: no key needed.
A role below `role` is refused with `denied` (403, or 404 where the object is out of sight).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import psycopg
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from pydantic import BaseModel

from quire.app.api import create_app
from quire.content.environment import ContentEnvironment
from quire.core.db import libpq_url
from quire.core.models import Role, Tenant
from quire.core.settings import Settings
from quire.memory.models import EvidenceIn, MemoryProposal, MemoryScope
from quire.memory.proposals import propose
from quire.runtime.context import RunContext
from quire.runtime.errors import RunFailed
from quire.runtime.process import Process, Transition
from quire.runtime.programs import program
from quire.runtime.service import create_run, describe_run
from tests.agent.test_mcp_server import served as served
from tests.agent.test_mcp_server import with_key
from tests.content.fixtures import pdf
from tests.factories import Person, TenantFixture, make_person, owner_url
from tests.harness import Harness
from tests.runtime.test_authorization import Question
from tests.runtime.test_process import Order, add_item

OPEN, TENANT, OWNER, CALLER = "open", "tenant", "owner", "caller"
POOL = 56  # memories waiting for a reviewer, per tenant: the review calls use them up
CASES = ("own", "other", "foreign")
ROLES = tuple(Role)


@dataclass(frozen=True)
class Rule:
    role: Role | None  # the weakest role allowed; None: no key needed
    scope: str
    ok: frozenset[int] = frozenset({200})  # statuses of an allowed call
    sees: Role = Role.admin  # OWNER scope: who sees other people's objects
    denied: int = 403  # status for a role below `role`
    refused_other: frozenset[int] | None = None  # other/foreign refusals, when not 404
    note: str = ""


def rule(role: Role | None, scope: str, *ok: int, **kwargs: Any) -> Rule:
    return Rule(role=role, scope=scope, ok=frozenset(ok or (200,)), **kwargs)


R, C, V, A = Role.reader, Role.contributor, Role.reviewer, Role.admin

# Every operation of the OpenAPI document, every console route and every MCP tool.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): rule(None, OPEN),
    ("GET", "/readyz"): rule(None, OPEN, 200, 503),
    ("GET", "/v1/me"): rule(R, CALLER),
    ("GET", "/v1/principals"): rule(A, CALLER),
    ("GET", "/v1/keys"): rule(A, CALLER),
    ("POST", "/v1/keys"): rule(A, CALLER, 201),
    ("DELETE", "/v1/keys/{key_id}"): rule(A, TENANT, 204),
    ("GET", "/v1/tenant/settings"): rule(R, CALLER),
    ("PUT", "/v1/tenant/settings"): rule(A, CALLER),
    ("POST", "/v1/runs"): rule(A, CALLER, 202),
    ("GET", "/v1/runs"): rule(R, CALLER),
    ("GET", "/v1/runs/{run_id}"): rule(R, OWNER),
    ("GET", "/v1/runs/{run_id}/events"): rule(R, OWNER),
    ("POST", "/v1/runs/{run_id}/events"): rule(C, OWNER, 202),
    ("POST", "/v1/runs/{run_id}/signals/{name}"): rule(C, OWNER, 202),
    ("POST", "/v1/runs/{run_id}/cancel"): rule(R, OWNER, 202),
    # 409: an earlier call of the matrix retried the same run, which is queued again.
    ("POST", "/v1/runs/{run_id}/retry"): rule(R, OWNER, 202, 409),
    ("GET", "/v1/tasks"): rule(R, CALLER),
    ("POST", "/v1/tasks/{task_id}/decision"): rule(R, OWNER),
    ("POST", "/v1/documents"): rule(C, CALLER, 200, 202),  # 200: the same bytes again
    ("GET", "/v1/documents"): rule(R, CALLER),
    ("GET", "/v1/documents/{document_id}"): rule(R, TENANT),
    ("DELETE", "/v1/documents/{document_id}"): rule(C, TENANT, 204),
    ("GET", "/v1/documents/{document_id}/versions/{number}"): rule(R, TENANT),
    ("GET", "/v1/documents/{document_id}/versions/{number}/file"): rule(R, TENANT),
    ("GET", "/v1/documents/{document_id}/versions/{number}/elements"): rule(R, TENANT),
    ("GET", "/v1/documents/{document_id}/versions/{number}/chunks"): rule(R, TENANT),
    ("POST", "/v1/documents/{document_id}/versions/{number}/retry"): rule(C, TENANT, 202),
    ("GET", "/v1/documents/{document_id}/diff"): rule(R, TENANT),
    ("GET", "/v1/collections"): rule(R, CALLER),
    ("GET", "/v1/search"): rule(R, CALLER),
    ("POST", "/v1/memories"): rule(C, CALLER, 202),
    ("GET", "/v1/memories"): rule(R, CALLER),
    ("GET", "/v1/memories/search"): rule(R, CALLER),
    ("GET", "/v1/memories/audit"): rule(V, CALLER),
    # A user-scoped memory is its user's; reviewers see every scope (they review them).
    ("GET", "/v1/memories/{item_id}"): rule(R, OWNER, sees=V),
    ("DELETE", "/v1/memories/{item_id}"): rule(V, TENANT, 202),
    ("POST", "/v1/memories/{item_id}/review"): rule(V, TENANT, 202),
    # One reason for several memories; one the caller cannot see makes it 404, nothing decided.
    ("POST", "/v1/memories/reject"): rule(V, TENANT),
    ("POST", "/v1/agent/runs"): rule(R, CALLER, 202),
    ("GET", "/v1/agent/runs"): rule(R, CALLER),
    ("GET", "/v1/agent/runs/{run_id}"): rule(R, OWNER),
    ("GET", "/v1/agent/runs/{run_id}/events"): rule(R, OWNER),
    ("POST", "/v1/agent/ask"): rule(R, CALLER, 200, 202),
    ("GET", "/v1/usage"): rule(A, CALLER),
    ("PUT", "/v1/usage/budget"): rule(A, CALLER),
    ("POST", "/v1/tools/mcp-servers"): rule(A, CALLER, 201),
    ("GET", "/v1/tools/mcp-servers"): rule(A, CALLER),
    ("GET", "/v1/tools/mcp-servers/{name}"): rule(A, TENANT),
    ("DELETE", "/v1/tools/mcp-servers/{name}"): rule(A, TENANT, 204),
    ("POST", "/v1/tools/mcp-servers/{name}/sync"): rule(A, TENANT),
    # The console: a session from an API key, the key's role; forms carry the session's token.
    ("GET", "/console"): rule(None, OPEN, 303),
    ("GET", "/console/login"): rule(None, OPEN),
    ("POST", "/console/login"): rule(None, OPEN, 303),
    ("POST", "/console/logout"): rule(R, CALLER, 303),
    ("GET", "/console/memory"): rule(V, CALLER),
    ("GET", "/console/memory/{item_id}"): rule(V, TENANT),
    # A refused decision comes back as the item page with the reason (a redirect), never applied.
    ("POST", "/console/memory/{item_id}/decide"): rule(V, TENANT, 303, refused_other=frozenset({303})),
    ("POST", "/console/memory/bulk"): rule(V, TENANT, 303, refused_other=frozenset({303})),
    # Documents: every role reads them, as in the API; a retry needs the contributor role,
    # checked by the service function the API's retry calls too.
    ("GET", "/console/documents"): rule(R, CALLER),
    ("GET", "/console/documents/{document_id}"): rule(R, TENANT),
    ("GET", "/console/documents/{document_id}/versions/{number}"): rule(R, TENANT),
    ("GET", "/console/documents/{document_id}/versions/{number}/diff"): rule(R, TENANT),
    ("POST", "/console/documents/{document_id}/versions/{number}/retry"): rule(C, TENANT, 303),
    ("GET", "/favicon.ico"): rule(None, OPEN),
    ("GET", "/docs"): rule(None, OPEN),
    ("GET", "/docs/oauth2-redirect"): rule(None, OPEN),
    ("GET", "/redoc"): rule(None, OPEN),
    ("POST", "/console/memory/bulk-reject"): rule(V, TENANT, 303, refused_other=frozenset({303})),
    ("GET", "/console/runs"): rule(R, CALLER),
    ("GET", "/console/runs/{run_id}"): rule(R, OWNER),
    ("GET", "/console/operations"): rule(A, CALLER),
    # MCP tools (over /mcp with the key): a refusal is a tool error, not an HTTP status.
    ("MCP", "search"): rule(R, CALLER),
    ("MCP", "read"): rule(R, TENANT),
    ("MCP", "recall"): rule(R, CALLER),
    ("MCP", "propose_memory"): rule(C, TENANT),
}


def refusal_expected(entry: Rule, role: Role, case: str) -> bool:
    """The rule refuses this role on this case's object (whatever status says so)."""
    if entry.role is None:
        return False
    return (
        not role.allows(entry.role)
        or case == "foreign"
        or (case == "other" and entry.scope == OWNER and not role.allows(entry.sees))
    )


def expected(entry: Rule, role: Role, case: str) -> frozenset[int]:
    if not refusal_expected(entry, role, case):
        return entry.ok
    if entry.role is not None and not role.allows(entry.role):
        return frozenset({entry.denied})
    return entry.refused_other or frozenset({404})


# The world: two tenants, people of every role, and their objects.


@program("test.matrix-wait")
def wait_for_go(ctx: RunContext, state: Order) -> Order:
    ctx.wait_for_signal("go")
    return state


@program("test.matrix-fail")
def fail_at_once(ctx: RunContext, state: Order) -> Order:
    raise RunFailed("matrix", "a run that fails, to be retried")


MATRIX_PROCESS = Process(
    name="test-matrix",
    version=1,
    state_type=Order,
    states=["open", "closed"],
    initial="open",
    final=["closed"],
    transitions=[Transition("open", "add", "open", update=add_item, role=Role.contributor)],
).register()


@program("test.matrix-ask")
def ask(ctx: RunContext, state: Question) -> Question:
    decision = ctx.human_task(
        "A question for one person", role=Role.reader, options=["answer"], assignee=state.asker
    )
    state.answer = decision.get("comment")
    return state


HANDBOOK = """# Handbook

## Holidays

Every employee gets 27 days of paid holiday a year.

Holiday requests go through the leave app.

## Travel

Employees must book flights through the travel portal.

Economy class is the default for flights under six hours.

Laptops are replaced every three years.

Parking permits are renewed every January.
"""


LOCKED_PDF = pdf([["A secret page"]], password="s3cret")


@dataclass
class Side:
    """One tenant's people and objects."""

    tenant: TenantFixture
    me: dict[Role, Person]
    them: dict[Role, Person]
    document: str = ""
    element: str = ""
    runs: dict[str, str] = field(default_factory=dict)  # principal id -> a finished agent run
    waiting: dict[str, str] = field(default_factory=dict)  # principal id -> a run waiting for a signal
    failed: dict[str, str] = field(default_factory=dict)  # principal id -> a failed run
    processes: dict[str, str] = field(default_factory=dict)  # principal id -> a process instance
    tasks: dict[str, list[str]] = field(default_factory=dict)  # principal id -> open tasks (a pool)
    private: dict[str, str] = field(default_factory=dict)  # principal id -> a user-scoped memory
    in_review: list[str] = field(default_factory=list)  # memories waiting for a reviewer (a pool)


class World:
    def __init__(self, api: TestClient, harness: Harness, foreign: TenantFixture) -> None:
        self.api, self.harness = api, harness
        home = TenantFixture(id=harness.tenant_id, name="matrix")
        self.home = self._side(home)
        self.foreign = self._side(foreign)
        for side in (self.home, self.foreign):
            self._populate(side)

    def _side(self, tenant: TenantFixture) -> Side:
        me = {r: make_person(self.harness.database, tenant, r, name=f"me-{r.value}") for r in ROLES}
        them = {r: make_person(self.harness.database, tenant, r, name=f"them-{r.value}") for r in ROLES}
        return Side(tenant=tenant, me=me, them=them)

    def _populate(self, side: Side) -> None:
        api, harness = self.api, self.harness
        admin = side.me[Role.admin].headers
        uploaded = api.post(
            "/v1/documents",
            files={"file": ("handbook.md", HANDBOOK.encode(), "text/markdown")},
            headers=admin,
        )
        assert uploaded.status_code == 202, uploaded.text
        side.document = uploaded.json()["document_id"]
        harness.drive()
        version = api.get(f"/v1/documents/{side.document}/versions/1", headers=admin).json()
        side.element = version["elements"][0]["id"]
        people = [*side.me.values(), *side.them.values()]
        for person in people:
            key = str(person.id)
            started = api.post("/v1/agent/runs", json={"question": "Holidays?"}, headers=person.headers)
            side.runs[key] = started.json()["id"]
            side.waiting[key] = self._start(side, "test.matrix-wait", Order(), owner=person.caller)
            side.failed[key] = self._start(side, "test.matrix-fail", Order(), owner=person.caller)
            side.processes[key] = self._start(
                side, MATRIX_PROCESS.program_name, MATRIX_PROCESS.start(Order()), owner=person.caller
            )
            side.tasks[key] = [
                self._start(side, "test.matrix-ask", Question(asker=person.id)) for _ in range(5)
            ]
        harness.drive()
        for person in people:
            key = str(person.id)
            with harness.database.tenant_session(side.tenant.id) as session:
                side.tasks[key] = [
                    str(describe_run(session, run_id=uuid.UUID(run)).open_tasks[0].id)
                    for run in side.tasks[key]
                ]
        # Memories made the way Quire's own code makes them: a user-scoped one for each person
        # (readers propose nothing themselves), and a pool waiting for reviewers.
        quote = "Every employee gets 27 days of paid holiday a year."
        evidence = [EvidenceIn(document_id=uuid.UUID(side.document), quote=quote)]
        with harness.database.tenant_session(side.tenant.id) as session:
            for person in people:
                item, _ = propose(
                    session,
                    tenant_id=side.tenant.id,
                    proposal=MemoryProposal(
                        text=quote, scope=MemoryScope.user, scope_ref=str(person.id), evidence=evidence
                    ),
                    proposed_by="matrix",
                    kicker=harness.kicker,
                )
                side.private[str(person.id)] = str(item.id)
            for number in range(POOL):
                item, _ = propose(
                    session,
                    tenant_id=side.tenant.id,
                    proposal=MemoryProposal(text=f"Rule {number}: {quote}", evidence=evidence),
                    proposed_by="matrix",
                    kicker=harness.kicker,
                )
                side.in_review.append(str(item.id))
            session.commit()
        harness.drive()

    def hidden_from(self, role: Role) -> set[str]:
        """Ids of the home tenant's objects that `role` may not see: other people's runs (but for
        administrators) and other people's private memories (but for reviewers)."""
        others = [str(person.id) for person in self.home.them.values()]
        hidden: set[str] = set()
        if not role.allows(Role.admin):
            hidden |= {self.home.runs[o] for o in others} | {self.home.waiting[o] for o in others}
            hidden |= {self.home.failed[o] for o in others}
        if not role.allows(Role.reviewer):
            hidden |= {self.home.private[o] for o in others}
        return hidden

    def _start(self, side: Side, program_name: str, state: BaseModel, **kwargs: Any) -> str:
        with self.harness.database.tenant_session(side.tenant.id) as session:
            run, _ = create_run(
                session, program=program_name, state=state, kicker=self.harness.kicker, **kwargs
            )
            session.commit()
        return str(run.id)

    def side(self, case: str) -> Side:
        return self.foreign if case == "foreign" else self.home

    def owner(self, role: Role, case: str) -> Person:
        side = self.side(case)
        return side.me[role] if case == "own" else side.them[Role.reader]

    # Fresh objects, for calls that use theirs up.

    def fresh_document(self, case: str) -> str:
        side = self.side(case)
        uploaded = self.api.post(
            "/v1/documents",
            files={"file": (f"{uuid.uuid4().hex}.md", b"# Note\n\nA short note.\n", "text/markdown")},
            headers=side.me[Role.admin].headers,
        )
        return str(uploaded.json()["document_id"])

    def fresh_failed_document(self, case: str) -> str:
        """A document whose version 1 failed (a password-protected PDF): one to retry."""
        side = self.side(case)
        uploaded = self.api.post(
            "/v1/documents",
            files={"file": (f"{uuid.uuid4().hex}.pdf", LOCKED_PDF, "application/pdf")},
            headers=side.me[Role.admin].headers,
        )
        assert uploaded.status_code == 202, uploaded.text
        self.harness.drive()
        return str(uploaded.json()["document_id"])

    def fresh_key(self, case: str) -> str:
        side = self.side(case)
        made = self.api.post(
            "/v1/keys", json={"name": "spare", "role": "reader"}, headers=side.me[Role.admin].headers
        )
        keys = self.api.get("/v1/keys", headers=side.me[Role.admin].headers).json()["data"]
        return next(k["id"] for k in keys if k["principal_id"] == made.json()["principal_id"])

    def fresh_server(self, case: str) -> str:
        side = self.side(case)
        name = f"s{uuid.uuid4().hex[:8]}"
        made = self.api.post(
            "/v1/tools/mcp-servers?sync=false",
            json={"name": name, "transport": "http", "url": "http://127.0.0.1:9/mcp"},
            headers=side.me[Role.admin].headers,
        )
        assert made.status_code == 201, made.text
        return name

    def reviewable(self, case: str) -> str:
        return self.side(case).in_review.pop()

    def task(self, role: Role, case: str) -> str:
        return str(uuid.UUID(self.side(case).tasks[str(self.owner(role, case).id)].pop()))


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


Builder = Callable[[World, Role, str], Call]


def _calls() -> dict[tuple[str, str], Builder]:
    """How to make each operation's request for a role and a case."""

    def doc(w: World, r: Role, c: str) -> str:
        return w.side(c).document

    def run(w: World, r: Role, c: str) -> str:
        return w.side(c).runs[str(w.owner(r, c).id)]

    def waiting(w: World, r: Role, c: str) -> str:
        return w.side(c).waiting[str(w.owner(r, c).id)]

    def instance(w: World, r: Role, c: str) -> str:
        return w.side(c).processes[str(w.owner(r, c).id)]

    def private(w: World, r: Role, c: str) -> str:
        return w.side(c).private[str(w.owner(r, c).id)]

    upload = {"file": ("new.md", b"# New\n\nSomething new.\n", "text/markdown")}
    return {
        ("GET", "/healthz"): lambda w, r, c: Call("GET", "/healthz"),
        ("GET", "/readyz"): lambda w, r, c: Call("GET", "/readyz"),
        ("GET", "/v1/me"): lambda w, r, c: Call("GET", "/v1/me"),
        ("GET", "/v1/principals"): lambda w, r, c: Call("GET", "/v1/principals"),
        ("GET", "/v1/keys"): lambda w, r, c: Call("GET", "/v1/keys"),
        ("POST", "/v1/keys"): lambda w, r, c: Call("POST", "/v1/keys", {"name": "new", "role": "reader"}),
        ("DELETE", "/v1/keys/{key_id}"): lambda w, r, c: Call("DELETE", f"/v1/keys/{w.fresh_key(c)}"),
        ("GET", "/v1/tenant/settings"): lambda w, r, c: Call("GET", "/v1/tenant/settings"),
        ("PUT", "/v1/tenant/settings"): lambda w, r, c: Call(
            "PUT", "/v1/tenant/settings", {"separation_of_duties": True}
        ),
        ("POST", "/v1/runs"): lambda w, r, c: Call(
            "POST", "/v1/runs", {"program": "test.matrix-wait", "state": {}}
        ),
        ("GET", "/v1/runs"): lambda w, r, c: Call("GET", "/v1/runs", params={"limit": 500}),
        ("GET", "/v1/runs/{run_id}"): lambda w, r, c: Call("GET", f"/v1/runs/{run(w, r, c)}"),
        ("GET", "/v1/runs/{run_id}/events"): lambda w, r, c: Call("GET", f"/v1/runs/{run(w, r, c)}/events"),
        ("POST", "/v1/runs/{run_id}/events"): lambda w, r, c: Call(
            "POST", f"/v1/runs/{instance(w, r, c)}/events", {"name": "add"}
        ),
        ("POST", "/v1/runs/{run_id}/signals/{name}"): lambda w, r, c: Call(
            "POST", f"/v1/runs/{waiting(w, r, c)}/signals/nudge", {"payload": 1}
        ),
        ("POST", "/v1/runs/{run_id}/cancel"): lambda w, r, c: Call(
            "POST", f"/v1/runs/{waiting(w, r, c)}/cancel"
        ),
        ("POST", "/v1/runs/{run_id}/retry"): lambda w, r, c: Call(
            "POST", f"/v1/runs/{w.side(c).failed[str(w.owner(r, c).id)]}/retry"
        ),
        ("GET", "/v1/tasks"): lambda w, r, c: Call("GET", "/v1/tasks", params={"limit": 500}),
        ("POST", "/v1/tasks/{task_id}/decision"): lambda w, r, c: Call(
            "POST", f"/v1/tasks/{w.task(r, c)}/decision", {"decision": "answer", "comment": "x"}
        ),
        ("POST", "/v1/documents"): lambda w, r, c: Call("POST", "/v1/documents", files=upload),
        ("GET", "/v1/documents"): lambda w, r, c: Call("GET", "/v1/documents", params={"limit": 500}),
        ("GET", "/v1/documents/{document_id}"): lambda w, r, c: Call("GET", f"/v1/documents/{doc(w, r, c)}"),
        ("DELETE", "/v1/documents/{document_id}"): lambda w, r, c: Call(
            "DELETE", f"/v1/documents/{w.fresh_document(c)}"
        ),
        ("GET", "/v1/documents/{document_id}/versions/{number}"): lambda w, r, c: Call(
            "GET", f"/v1/documents/{doc(w, r, c)}/versions/1"
        ),
        ("GET", "/v1/documents/{document_id}/versions/{number}/file"): lambda w, r, c: Call(
            "GET", f"/v1/documents/{doc(w, r, c)}/versions/1/file"
        ),
        ("GET", "/v1/documents/{document_id}/versions/{number}/elements"): lambda w, r, c: Call(
            "GET", f"/v1/documents/{doc(w, r, c)}/versions/1/elements"
        ),
        ("GET", "/v1/documents/{document_id}/versions/{number}/chunks"): lambda w, r, c: Call(
            "GET", f"/v1/documents/{doc(w, r, c)}/versions/1/chunks"
        ),
        ("POST", "/v1/documents/{document_id}/versions/{number}/retry"): lambda w, r, c: Call(
            "POST", f"/v1/documents/{w.fresh_failed_document(c)}/versions/1/retry"
        ),
        ("GET", "/v1/documents/{document_id}/diff"): lambda w, r, c: Call(
            "GET", f"/v1/documents/{doc(w, r, c)}/diff", params={"from": 1, "to": 1}
        ),
        ("GET", "/v1/collections"): lambda w, r, c: Call("GET", "/v1/collections"),
        ("GET", "/v1/search"): lambda w, r, c: Call("GET", "/v1/search", params={"q": "holiday"}),
        ("POST", "/v1/memories"): lambda w, r, c: Call(
            "POST",
            "/v1/memories",
            {
                "text": "Laptops are replaced every three years.",
                "evidence": [{"document_id": w.home.document, "quote": "Laptops are replaced"}],
            },
        ),
        ("GET", "/v1/memories"): lambda w, r, c: Call("GET", "/v1/memories", params={"limit": 500}),
        ("GET", "/v1/memories/search"): lambda w, r, c: Call(
            "GET", "/v1/memories/search", params={"q": "holiday"}
        ),
        ("GET", "/v1/memories/audit"): lambda w, r, c: Call("GET", "/v1/memories/audit"),
        ("GET", "/v1/memories/{item_id}"): lambda w, r, c: Call("GET", f"/v1/memories/{private(w, r, c)}"),
        ("DELETE", "/v1/memories/{item_id}"): lambda w, r, c: Call(
            "DELETE", f"/v1/memories/{w.reviewable(c)}", params={"reason": "matrix"}
        ),
        ("POST", "/v1/memories/{item_id}/review"): lambda w, r, c: Call(
            "POST", f"/v1/memories/{w.reviewable(c)}/review", {"decision": "reject", "reason": "matrix"}
        ),
        ("POST", "/v1/memories/reject"): lambda w, r, c: Call(
            "POST", "/v1/memories/reject", {"items": [w.reviewable(c)], "reason": "matrix"}
        ),
        ("POST", "/v1/agent/runs"): lambda w, r, c: Call("POST", "/v1/agent/runs", {"question": "Travel?"}),
        ("GET", "/v1/agent/runs"): lambda w, r, c: Call("GET", "/v1/agent/runs", params={"limit": 200}),
        ("GET", "/v1/agent/runs/{run_id}"): lambda w, r, c: Call("GET", f"/v1/agent/runs/{run(w, r, c)}"),
        ("GET", "/v1/agent/runs/{run_id}/events"): lambda w, r, c: Call(
            "GET", f"/v1/agent/runs/{run(w, r, c)}/events"
        ),
        ("POST", "/v1/agent/ask"): lambda w, r, c: Call(
            "POST", "/v1/agent/ask", {"question": "Travel?", "timeout_seconds": 0}
        ),
        ("GET", "/v1/usage"): lambda w, r, c: Call("GET", "/v1/usage"),
        ("PUT", "/v1/usage/budget"): lambda w, r, c: Call("PUT", "/v1/usage/budget", {"daily_usd": 5}),
        ("POST", "/v1/tools/mcp-servers"): lambda w, r, c: Call(
            "POST",
            "/v1/tools/mcp-servers",
            {"name": f"n{uuid.uuid4().hex[:8]}", "transport": "http", "url": "http://127.0.0.1:9/mcp"},
            params={"sync": "false"},
        ),
        ("GET", "/v1/tools/mcp-servers"): lambda w, r, c: Call("GET", "/v1/tools/mcp-servers"),
        ("GET", "/v1/tools/mcp-servers/{name}"): lambda w, r, c: Call(
            "GET", f"/v1/tools/mcp-servers/{w.fresh_server(c)}"
        ),
        ("DELETE", "/v1/tools/mcp-servers/{name}"): lambda w, r, c: Call(
            "DELETE", f"/v1/tools/mcp-servers/{w.fresh_server(c)}"
        ),
        ("POST", "/v1/tools/mcp-servers/{name}/sync"): lambda w, r, c: Call(
            "POST", f"/v1/tools/mcp-servers/{w.fresh_server(c)}/sync"
        ),
        ("GET", "/console"): lambda w, r, c: Call("GET", "/console"),
        ("GET", "/console/login"): lambda w, r, c: Call("GET", "/console/login"),
        ("POST", "/console/login"): lambda w, r, c: Call("POST", "/console/login"),  # filled in by the walk
        ("POST", "/console/logout"): lambda w, r, c: Call("POST", "/console/logout"),
        ("GET", "/console/memory"): lambda w, r, c: Call("GET", "/console/memory"),
        ("GET", "/console/memory/{item_id}"): lambda w, r, c: Call(
            "GET", f"/console/memory/{w.side(c).in_review[0]}"
        ),
        ("POST", "/console/memory/{item_id}/decide"): lambda w, r, c: Call(
            "POST",
            f"/console/memory/{w.reviewable(c)}/decide",
            data={"decision": "reject", "reason": "matrix"},
        ),
        ("POST", "/console/memory/bulk"): lambda w, r, c: Call(
            "POST", "/console/memory/bulk", data={"only": w.reviewable(c)}
        ),
        ("POST", "/console/memory/bulk-reject"): lambda w, r, c: Call(
            "POST", "/console/memory/bulk-reject", data={"item": w.reviewable(c), "reason": "matrix"}
        ),
        ("GET", "/console/documents"): lambda w, r, c: Call("GET", "/console/documents"),
        ("GET", "/console/documents/{document_id}"): lambda w, r, c: Call(
            "GET", f"/console/documents/{doc(w, r, c)}"
        ),
        ("GET", "/console/documents/{document_id}/versions/{number}"): lambda w, r, c: Call(
            "GET", f"/console/documents/{doc(w, r, c)}/versions/1"
        ),
        ("GET", "/console/documents/{document_id}/versions/{number}/diff"): lambda w, r, c: Call(
            "GET", f"/console/documents/{doc(w, r, c)}/versions/1/diff", params={"against": 1}
        ),
        ("POST", "/console/documents/{document_id}/versions/{number}/retry"): lambda w, r, c: Call(
            "POST", f"/console/documents/{w.fresh_failed_document(c)}/versions/1/retry"
        ),
        ("GET", "/favicon.ico"): lambda w, r, c: Call("GET", "/favicon.ico"),
        ("GET", "/docs"): lambda w, r, c: Call("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"): lambda w, r, c: Call("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"): lambda w, r, c: Call("GET", "/redoc"),
        ("GET", "/console/runs"): lambda w, r, c: Call("GET", "/console/runs"),
        ("GET", "/console/runs/{run_id}"): lambda w, r, c: Call("GET", f"/console/runs/{run(w, r, c)}"),
        ("GET", "/console/operations"): lambda w, r, c: Call("GET", "/console/operations"),
        ("MCP", "search"): lambda w, r, c: Call("MCP", "search", {"query": "holiday"}),
        ("MCP", "read"): lambda w, r, c: Call(
            "MCP", "read", {"document_id": doc(w, r, c), "element_id": w.side(c).element}
        ),
        ("MCP", "recall"): lambda w, r, c: Call("MCP", "recall", {"query": "holiday"}),
        ("MCP", "propose_memory"): lambda w, r, c: Call(
            "MCP",
            "propose_memory",
            {
                "text": "Parking permits are renewed every January.",
                "document_id": doc(w, r, c),
                "quote": "Parking permits are renewed every January.",
            },
        ),
    }


CALLS = _calls()


# Routes, as the app serves them.


def served_routes(app: Any) -> set[tuple[str, str]]:
    routes = {
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    }
    from quire.app.console import favicon
    from quire.app.console.mount import ROUTERS

    for router in (*ROUTERS, favicon.router):
        for route in router.routes:
            for method in route.methods - {"HEAD"}:
                routes.add((method, route.path))
    # Routes left out of the OpenAPI document (the API docs' own pages) are served all the same.
    from fastapi.routing import APIRoute

    for route in app.routes:
        if isinstance(route, APIRoute) and not route.include_in_schema:
            routes |= {(method, route.path) for method in route.methods - {"HEAD"}}
    from quire.agent.mcp.server import SERVED

    routes |= {("MCP", name) for name in SERVED}
    return routes


def test_every_route_declares_its_rule(settings: Settings, database: Any) -> None:
    app = create_app(settings=settings, database=database)
    routes = served_routes(app)
    assert routes - set(RULES) == set(), "routes without a rule in tests/test_authorization_matrix.py"
    assert set(RULES) - routes == set(), "rules for routes that do not exist"
    assert set(CALLS) == set(RULES)


# The walk.


def fingerprint(url: str) -> str:
    """A digest of every row Quire keeps, as the tables' owner sees them. Refused events are
    recorded on purpose (a run's event log keeps them) and console logins make sessions."""
    skip = {"alembic_version", "core_context_key", "core_console_session"}
    digest = hashlib.sha256()
    with psycopg.connect(libpq_url(owner_url(url))) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
            if row[0] not in skip
        ]
        for table in tables:
            where = "WHERE type <> 'process.refused'" if table == "runtime_event" else ""
            rows = conn.execute(
                "SELECT coalesce(string_agg(md5(t::text), ',' ORDER BY md5(t::text)), '') "
                f"FROM {table} t {where}"
            ).fetchone()
            digest.update(f"{table}:{rows[0] if rows else ''};".encode())
    return digest.hexdigest()


@pytest.fixture
def matrix_api(content: Harness, settings: Settings, environment: ContentEnvironment) -> Iterator[TestClient]:
    quiet = settings.model_copy(
        update={
            "rate_limit_per_minute": 0,
            "console_rate_limit_per_minute": 0,
            "outbound_allow": "127.0.0.1/32",
        }
    )
    app = create_app(settings=quiet, database=content.database, services=content.services)
    app.state.kicker = content.kicker
    with TestClient(app) as client:
        yield client


@pytest.fixture
def foreign_tenant(content: Harness) -> Iterator[TenantFixture]:
    with content.database.system_session() as session:
        tenant = Tenant(name=f"foreign-{uuid.uuid4().hex[:8]}")
        session.add(tenant)
        session.commit()
    yield TenantFixture(id=tenant.id, name=tenant.name)
    with psycopg.connect(libpq_url(owner_url(content.database.url))) as conn:
        conn.execute("DELETE FROM core_tenant WHERE id = %s", (tenant.id,))


def console_client(api: TestClient, person: Person) -> tuple[TestClient, str]:
    client = TestClient(api.app)
    form = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token
    key = person.headers["Authorization"].removeprefix("Bearer ")
    logged = client.post(
        "/console/login",
        data={"key": key, "csrf": token.group(1), "next": "/console/runs"},
        follow_redirects=False,
    )
    assert logged.status_code == 303, logged.text
    page = client.get("/console/runs")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    return client, csrf.group(1)


def send(
    api: TestClient, consoles: dict[Role, tuple[TestClient, str]], role: Role, who: Person, call: Call
) -> tuple[int, str]:
    if call.path.startswith("/console"):
        client, _ = consoles[role]
        data = None
        if call.method == "POST":  # the session's current token (a login makes a new session)
            page = client.get("/console/runs")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            data = {**(call.data or {}), "csrf": token.group(1) if token else ""}
        if call.path == "/console/login":
            form = client.get("/console/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            key = who.headers["Authorization"].removeprefix("Bearer ")
            data = {"key": key, "csrf": token.group(1) if token else "", "next": "/console/runs"}
        response = client.request(
            call.method, call.path, data=data, params=call.params, follow_redirects=False
        )
        return response.status_code, response.text
    if call.path.endswith("/events") and call.method == "GET":
        with api.stream("GET", call.path, headers=who.headers) as response:
            return response.status_code, ""
    response = api.request(
        call.method, call.path, json=call.json, params=call.params, files=call.files, headers=who.headers
    )
    return response.status_code, response.text


def call_mcp(url: str, who: Person, tool: str, arguments: dict[str, Any]) -> tuple[int, str]:
    """An MCP tool call over HTTP as `who`: 200 when it answered, 403/404 when it refused."""

    async def go() -> Any:
        key = who.headers["Authorization"].removeprefix("Bearer ")
        async with Client(with_key(url, key), mode="auto", cache=None) as client:
            return await client.call_tool(tool, arguments)

    result = anyio.run(go)
    text = " ".join(getattr(part, "text", "") for part in result.content)
    if not result.is_error:
        return 200, text
    if "role or above" in text:
        return 403, text
    return 404, text  # the thing named is not in the caller's tenant


def test_the_matrix(
    matrix_api: TestClient, content: Harness, foreign_tenant: TenantFixture, served: str
) -> None:
    world = World(matrix_api, content, foreign_tenant)
    consoles = {role: console_client(matrix_api, world.home.me[role]) for role in ROLES}
    foreign_ids = {world.foreign.document, *world.foreign.runs.values(), *world.foreign.private.values()}
    failures: list[str] = []
    walked = 0
    for (method, path), entry in RULES.items():
        for role in ROLES:
            for case in CASES if entry.scope in (TENANT, OWNER) else ("own",):
                walked += 1
                who = world.home.me[role]
                call = CALLS[(method, path)](world, role, case)
                content.drive()  # whatever making the call's object started settles first
                mutating = method not in ("GET",)
                before = fingerprint(content.database.url) if mutating else ""
                if method == "MCP":
                    status, body = call_mcp(served, who, call.path, call.json)
                else:
                    status, body = send(matrix_api, consoles, role, who, call)
                content.drive()
                want = expected(entry, role, case)
                label = f"{method} {path} as {role.value} on {case}'s"
                if status not in want:
                    failures.append(f"{label}: {status}, expected {sorted(want)}: {body[:200]}")
                # Decided by the rule, not the status: a console refusal is a 303 like a success.
                refused = refusal_expected(entry, role, case)
                if mutating and refused and fingerprint(content.database.url) != before:
                    failures.append(f"{label}: refused with {status}, yet the database changed")
                if entry.scope == CALLER and status in entry.ok:
                    leaked = [i for i in foreign_ids | world.hidden_from(role) if i in body]
                    if leaked:
                        failures.append(f"{label}: the answer holds ids hidden from the caller: {leaked}")
                if path == "/console/logout" and status == 303:
                    consoles[role] = console_client(matrix_api, world.home.me[role])
    print(f"authorization matrix: {len(RULES)} operations x {len(ROLES)} roles, {walked} calls")
    assert not failures, "\n".join(failures)
