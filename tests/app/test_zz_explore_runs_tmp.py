from __future__ import annotations
import json
from fastapi.testclient import TestClient
from quire.agent.config import offline_config
from quire.agent.environment import configure_agent
from quire.core.models import Role
from quire.runtime.events import events_after
from quire.runtime.service import describe_run
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

HANDBOOK = """# Employee handbook

## Holidays

Every employee gets 27 days of paid holiday a year, plus public holidays.
"""

def test_explore(api: TestClient, content: Harness) -> None:
    configure_agent(offline_config(), content.database)
    tenant = TenantFixture(id=content.tenant_id, name="x")
    c = auth(make_key(content.database, tenant, Role.contributor))
    r = auth(make_key(content.database, tenant, Role.reader))
    api.post("/v1/documents", files={"file": ("h.md", HANDBOOK.encode(), "text/markdown")}, headers=c)
    content.drive()
    run_id = api.post("/v1/agent/runs", json={"question": "How many days of holiday?"}, headers=r).json()["run_id"]
    content.drive()
    import uuid
    with content.database.tenant_session(content.tenant_id) as s:
        run = describe_run(s, run_id=uuid.UUID(run_id))
        ev = events_after(s, run_id=uuid.UUID(run_id))
        out = {"run": run.model_dump(mode="json"), "events": [{"id": e.id, "type": e.type, "data": e.data, "at": str(e.created_at)} for e in ev]}
        from quire.runtime.service import list_runs
        runs, n = list_runs(s)
        out["all"] = [(x.program, x.status.value) for x in runs]
    open("/tmp/explore/agent.json", "w").write(json.dumps(out, indent=1, default=str))
    configure_agent(offline_config(), None)
