"""Quieting unstructured: the environment every process that imports it sets first.

unstructured otherwise pings its telemetry endpoint and runs nvidia-smi on import, and prints an
advertisement per process; the Hugging Face libraries would otherwise try the hub.
"""

from __future__ import annotations

import os

UNSTRUCTURED_ENVIRONMENT = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def use_quiet_unstructured_environment() -> None:
    """Opt out of unstructured's telemetry and notices before it is first imported."""
    for name, value in UNSTRUCTURED_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
