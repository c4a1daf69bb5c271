"""The documentation pages name only Quire's own assets, and Quire serves them (issue 21)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_everything_from_quire(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    assert "http://" not in html.text and "https://" not in html.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert assets and all(url.startswith("/docs/assets/") for url in assets), assets
    for url in assets:
        served = client.get(url)
        assert served.status_code == 200 and len(served.content) > 0, url
    assert client.get("/openapi.json").json()["info"]["title"] == "Quire"


def test_the_openapi_document_points_mcp_clients_at_mcp(client: TestClient) -> None:
    description = client.get("/openapi.json").json()["info"]["description"]
    assert "/mcp" in description and "Authorization: Bearer" in description
    assert "docs/mcp.md" in description
    # The endpoint it names is there, and asks for the key it mentions.
    assert client.post("/mcp", json={}).status_code == 401


def test_the_readme_points_at_the_mcp_guide() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("\n## MCP") :].split("\n## ")[1]
    assert "/mcp" in section and "docs/mcp.md" in section and "quire mcp" in section
