"""A store that can be stopped: a real :class:`MemoryBackend` behind a switch.

While ``down`` is true every call raises :class:`BackendUnavailable`, exactly what a real
backend raises when its server is gone, so the integrations' ``on_error`` handling is tested
against the backend protocol rather than a mock of a driver. (The Redis variant of the same
tests points a real Redis backend at a closed port.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from backends.memory import MemoryBackend
from limits_core import AsyncBackend, Backend, BackendUnavailable, Decision
from limits_core.algorithm import Algorithm
from tests.support.http import free_port


class StoppableBackend:
    """Serves both facades, like :class:`MemoryBackend`; ``stop()`` / ``start()`` the store."""

    def __init__(self) -> None:
        self.inner = MemoryBackend()
        self.down = False
        self.failures = 0

    def stop(self) -> None:
        self.down = True

    def start(self) -> None:
        self.down = False

    def _check(self) -> None:
        if self.down:
            self.failures += 1
            raise BackendUnavailable("store stopped: connection refused")

    def decide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        self._check()
        return self.inner.decide(algorithm, key, cost, now_us, consume)

    def reset(self, algorithm: Algorithm, key: str) -> None:
        self._check()
        self.inner.reset(algorithm, key)

    def close(self) -> None:
        self.inner.close()

    async def adecide(
        self, algorithm: Algorithm, key: str, cost: int, now_us: int | None, consume: bool
    ) -> Decision:
        return self.decide(algorithm, key, cost, now_us, consume)

    async def areset(self, algorithm: Algorithm, key: str) -> None:
        self.reset(algorithm, key)

    async def aclose(self) -> None:
        self.close()


def _closed_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture(name="dead_async_backend", params=["stopped_memory", "redis_closed_port"])
def dead_async_backend_fixture(request: pytest.FixtureRequest) -> Iterator[AsyncBackend]:
    """An async backend whose store is down: a stopped :class:`StoppableBackend`, and (when
    the Redis backend exists) a real Redis backend pointed at a closed loopback port."""
    if request.param == "stopped_memory":
        backend = StoppableBackend()
        backend.stop()
        yield backend
        return
    redis = pytest.importorskip("backends.redis")
    yield redis.AsyncRedisBackend(_closed_redis_url(), prefix=f"test:{uuid.uuid4().hex}:")


@pytest.fixture(name="dead_backend", params=["stopped_memory", "redis_closed_port"])
def dead_backend_fixture(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The sync twin of ``dead_async_backend``."""
    if request.param == "stopped_memory":
        backend = StoppableBackend()
        backend.stop()
        yield backend
        return
    redis = pytest.importorskip("backends.redis")
    yield redis.RedisBackend(_closed_redis_url(), prefix=f"test:{uuid.uuid4().hex}:")
