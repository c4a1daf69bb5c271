"""The documentation pages name only Quire's own assets, and Quire serves them (issue 21)."""

from __future__ import annotations

import re

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
