"""How much a run may spend: what its starter asked for, within their role's maximum; and the
daily budget of a tenant that set none."""

from __future__ import annotations

from dataclasses import dataclass, field

from quire.agent.costs import Budget
from quire.agent.errors import BudgetOverMaximum
from quire.core.models import Role
from quire.core.settings import (
    DEFAULT_TENANT_DAILY_BUDGET_USD,
    RUN_BUDGET_MAXIMUMS,
    RunBudgetMaximum,
    Settings,
)


def _maximum(limits: RunBudgetMaximum) -> Budget:
    return Budget(**limits.model_dump())


@dataclass(frozen=True)
class BudgetPolicy:
    maximums: dict[Role, Budget] = field(
        default_factory=lambda: {role: _maximum(RUN_BUDGET_MAXIMUMS[role.value]) for role in Role}
    )
    default_daily_usd: float | None = DEFAULT_TENANT_DAILY_BUDGET_USD

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetPolicy:
        maximums = settings.run_budget_maximums
        return cls(
            maximums={role: _maximum(maximums[role.value]) for role in Role},
            default_daily_usd=settings.tenant_daily_budget_usd or None,
        )

    def for_run(self, role: Role, asked: Budget) -> Budget:
        """The budget of a run a `role` starts asking for `asked`.

        A limit given as null becomes the role's maximum; one left out keeps its default, lowered
        to the maximum if need be; one given over the maximum is refused, naming both.
        """
        maximum = self.maximums[role]
        limits: dict[str, float | int | None] = {}
        for name in Budget.model_fields:
            value, most = getattr(asked, name), getattr(maximum, name)
            if value is None:
                limits[name] = most
            elif name not in asked.model_fields_set:
                limits[name] = min(value, most)
            elif value > most:
                raise BudgetOverMaximum(
                    f"budget.{name} is {value}, over the {role.value} role's maximum of {most} "
                    f"(QUIRE_RUN_BUDGET_{role.value.upper()})"
                )
            else:
                limits[name] = value
        return Budget(**limits)
