"""The example FastAPI app (``examples/fastapi_app.py``) as the load run serves it: state in
Redis under a prefix of the run's own, and the app-wide limit given by the environment.

``LIMITS_CORE_REDIS_URL`` (required), ``LIMITS_CORE_LOAD_PREFIX`` and
``LIMITS_CORE_LOAD_RATE`` (the app-wide limit per client IP, e.g. ``"20/10s"``).
"""

from __future__ import annotations

import os

from backends.redis import AsyncRedisBackend
from examples.fastapi_app import create_app
from limits_core import AsyncBackend


def _backend(prefix: str) -> AsyncBackend:
    return AsyncRedisBackend(
        os.environ["LIMITS_CORE_REDIS_URL"],
        prefix=os.environ.get("LIMITS_CORE_LOAD_PREFIX", "limits-core-load:") + prefix,
    )


app = create_app(_backend, app_rate=os.environ.get("LIMITS_CORE_LOAD_RATE", "20/10s"))
