"""The registry of durable programs: `@program("name", version=1)` on a typed function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from pydantic import BaseModel, TypeAdapter

from quire.core.models import Role
from quire.runtime.errors import ProgramNotFound

if TYPE_CHECKING:
    from quire.runtime.context import RunContext

S = TypeVar("S", bound=BaseModel)
ProgramFunction = Callable[["RunContext", Any], Any]


@dataclass(frozen=True)
class Program:
    name: str
    version: int
    function: ProgramFunction
    state_type: type[BaseModel]
    # Called with (ctx, latest published state) when a cancelled run stops, for compensation.
    on_cancel: Callable[[RunContext, Any], None] | None = None
    # Work nobody waits on (memory drawn from a new document): its runs advance only when a
    # worker has nothing else queued, so they never slow down the work people wait for.
    background: bool = False
    # A role that sees every run of the program besides its owner and administrators
    # (reviewers see every memory review); None: owners and administrators only.
    visible_to: Role | None = None
    # Whether `POST /v1/runs` may start it. Quire's own programs have routes of their own that
    # check what their state may say (an agent run acts as its caller, an ingestion reads an
    # upload); they are not startable with a state of the caller's choosing.
    startable: bool = True

    def load_state(self, data: dict[str, Any]) -> BaseModel:
        return self.state_type.model_validate(data)

    def dump_state(self, state: Any) -> dict[str, Any]:
        if isinstance(state, BaseModel):
            dumped: dict[str, Any] = state.model_dump(mode="json")
            return dumped
        return dict(TypeAdapter(self.state_type).dump_python(state, mode="json"))


@dataclass
class Registry:
    programs: dict[str, dict[int, Program]] = field(default_factory=dict)

    def add(self, program: Program) -> None:
        versions = self.programs.setdefault(program.name, {})
        existing = versions.get(program.version)
        if existing is not None and existing.function is not program.function:
            qualname = getattr(existing.function, "__qualname__", "?")
            raise ValueError(f"program {program.name} v{program.version} is already {qualname}")
        versions[program.version] = program

    def get(self, name: str, version: int | None = None) -> Program:
        versions = self.programs.get(name)
        if not versions:
            raise ProgramNotFound(f"no program named {name!r} is registered")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise ProgramNotFound(
                f"program {name!r} has no version {version} here (it has {sorted(versions)})"
            )
        return versions[version]

    def names(self) -> list[str]:
        return sorted(self.programs)

    def is_background(self, name: str) -> bool:
        """Whether runs of `name` wait for a worker with nothing else to do (False if unknown)."""
        versions = self.programs.get(name)
        return versions[max(versions)].background if versions else False

    def visible_to(self, name: str) -> Role | None:
        """The role that sees every run of `name` (None: its owners and administrators only)."""
        versions = self.programs.get(name)
        return versions[max(versions)].visible_to if versions else None

    def openings(self) -> dict[str, Role]:
        """Each program whose runs a role sees besides their owners, with that role."""
        return {
            name: program.visible_to
            for name, versions in self.programs.items()
            if (program := versions[max(versions)]).visible_to is not None
        }


registry = Registry()


def state_type_of(function: ProgramFunction) -> type[BaseModel]:
    parameters = list(inspect.signature(function).parameters)
    if len(parameters) != 2:
        raise TypeError("a program takes (ctx, state)")
    hints = get_type_hints(function)
    state_type = hints.get(parameters[1])
    if not (isinstance(state_type, type) and issubclass(state_type, BaseModel)):
        raise TypeError(f"the state of program {function.__name__} must be a pydantic model")
    return state_type


def program(
    name: str,
    *,
    version: int = 1,
    on_cancel: Callable[[RunContext, Any], None] | None = None,
    background: bool = False,
    visible_to: Role | None = None,
    startable: bool = True,
) -> Callable[[Callable[[RunContext, S], S]], Callable[[RunContext, S], S]]:
    """Register a durable program: a function of (ctx, state) that returns its final state.

    The function is replayed from the top each time its run resumes; `ctx.step` returns the
    recorded results of steps that completed before, so only new work runs. Everything that
    is not deterministic (I/O, clocks, random numbers) belongs inside a step. A `background`
    program's runs are kicked on a queue that workers serve only when nothing else is queued.
    """

    def register(function: Callable[[RunContext, S], S]) -> Callable[[RunContext, S], S]:
        registry.add(
            Program(
                name=name,
                version=version,
                function=function,
                state_type=state_type_of(function),
                on_cancel=on_cancel,
                background=background,
                visible_to=visible_to,
                startable=startable,
            )
        )
        return function

    return register
