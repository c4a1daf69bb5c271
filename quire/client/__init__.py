"""A typed Python client for Quire's HTTP API, sync (`Quire`) and async (`AsyncQuire`).

It imports httpx and pydantic only, never the server's modules, so agents and scripts can use it
without the database or the models. The server's packages must not import it.
"""

from quire.client.asynchronous import AsyncQuire
from quire.client.errors import QuireError
from quire.client.retries import RetryPolicy
from quire.client.synchronous import Quire

__all__ = ["AsyncQuire", "Quire", "QuireError", "RetryPolicy"]
