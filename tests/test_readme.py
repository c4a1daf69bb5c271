from __future__ import annotations

from pathlib import Path

from quire.core.settings import ENV_PREFIX, Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [
        ENV_PREFIX + name.upper()
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in text
    ]
    assert missing == []
