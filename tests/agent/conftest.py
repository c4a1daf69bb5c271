from __future__ import annotations

import pytest

from tests.provider_guard import block_real_providers


@pytest.fixture(autouse=True, scope="session")
def no_real_providers() -> None:
    block_real_providers()
