"""Logging as configured for Quire's processes."""

from __future__ import annotations

import logging
import os

import pytest

from quire.app.logs import configure_logging
from quire.core.settings import Settings


def test_a_configured_process_exports_its_log_settings_to_the_parsing_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)
    monkeypatch.delenv("QUIRE_LOG_FORMAT", raising=False)
    monkeypatch.delenv("QUIRE_LOG_LEVEL", raising=False)

    configure_logging(Settings(log_format="json", log_level="WARNING"), process_name="quire-worker")

    assert (os.environ["QUIRE_LOG_FORMAT"], os.environ["QUIRE_LOG_LEVEL"]) == ("json", "WARNING")
