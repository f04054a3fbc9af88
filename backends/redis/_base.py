"""The part of :class:`RedisBackend` and :class:`AsyncRedisBackend` that does no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends.redis._batch import VIA_CLIENT, Outcome, ReplyErrors, Route
from backends.redis._connect import (
    check_timeout,
    create_client,
    describe_client,
    direct_pool,
    import_redis,
    mask_url,
    warn_if_retrying,
)
from backends.redis._plan import Plan, PolicyPlan, check_prefix, make_plan
from limits_core.algorithm import Algorithm
from limits_core.decision import Decision
from limits_core.errors import BackendError, ConfigurationError

__all__ = ["RedisBackendBase", "first_error", "pool_size"]

#: Plans kept per backend; more distinct algorithm objects than this start the cache over.
_MAX_PLANS = 256


class RedisBackendBase:
    """Configuration, client ownership and per-algorithm plans, shared by both twins."""

    _asyncio: bool = False

    def __init__(
        self,
        url: str | None,
        *,
        client: Any,
        prefix: str,
        socket_timeout: float | None,
        connect_timeout: float | None,
        options: dict[str, Any],
    ) -> None:
        self._prefix = check_prefix(prefix)
        socket_timeout = check_timeout(socket_timeout, "socket_timeout")
        connect_timeout = check_timeout(connect_timeout, "connect_timeout")
        redis = import_redis()
        # Imported only now: it names redis-py's exception classes.
        from backends.redis._errors import (
            CAUGHT,
            NOSCRIPT,
            REDIRECTED,
            REPLY_ERROR,
            TIMEOUT,
            translate,
        )

        self._caught = CAUGHT
        self._noscript = NOSCRIPT
        self._translate: Callable[[BaseException, str], BackendError] = translate
        if (url is None) == (client is None):
            raise ConfigurationError("give exactly one of a Redis URL and client=")
        if client is None:
            assert url is not None
            self._client = create_client(
                url,
                asyncio=self._asyncio,
                socket_timeout=socket_timeout,
                connect_timeout=connect_timeout,
                options=options,
            )
            self._address = mask_url(url)
        else:
            if options:
                raise ConfigurationError(
                    f"client options {sorted(options)} apply only to a client built from a URL"
                )
            self._check_client(redis, client)
            if direct_pool(client) is None:
                # Only calls through execute_command are subject to the client's retries.
                warn_if_retrying(client)
            self._client = client
            self._address = describe_client(client)
        self._owns_client = client is None
        self._closed = False
        # Scripts run as EVALSHA on a pooled connection (see direct_pool), or through the
        # client's execute_command: never through redis-py's Script wrapper, a call layer that
        # re-checks its arguments on every call.
        self._execute = self._client.execute_command
        self._direct = direct_pool(self._client)
        self._plans: dict[int, Plan | PolicyPlan] = {}
        # Batches (decide_many, coalescing): which route holds which script, and the nodes
        # of a cluster by name.
        self._reply_error = REPLY_ERROR
        self._timeout = TIMEOUT
        self._errors = ReplyErrors(NOSCRIPT, REDIRECTED, translate, self._address)
        self._loaded: set[tuple[Route, str]] = set()
        self._nodes: dict[Route, Any] = {}
        self._route = self._router()

    def _router(self) -> Callable[[tuple[Any, ...]], Route]:
        """``route(command)``: where a batched command goes (see ``_batch``): the server's
        pool, the node owning the command's slot, or one by one through the client."""
        if self._direct is not None:
            return lambda command: ""
        manager = getattr(self._client, "nodes_manager", None)
        if manager is None:  # a single-connection client
            return lambda command: VIA_CLIENT
        from redis.crc import key_slot

        get_node, nodes = manager.get_node_from_slot, self._nodes

        def route(command: tuple[Any, ...]) -> Route:
            # command[3] is the call's first key; all its keys share one slot.
            node = get_node(key_slot(command[3].encode()))
            name: str = node.name
            nodes[name] = node
            return name

        return route

    def _check_client(self, redis: Any, client: Any) -> None:
        if self._asyncio:
            kinds = (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)
            wanted = "redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster"
        else:
            kinds = (redis.Redis, redis.cluster.RedisCluster)
            wanted = "redis.Redis or redis.cluster.RedisCluster"
        if not isinstance(client, kinds):
            raise ConfigurationError(f"client must be a {wanted}, got {type(client).__name__}")

    @property
    def client(self) -> Any:
        """The redis-py client (owned by the backend only when built from a URL)."""
        return self._client

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._address!r}, prefix={self._prefix!r})"

    def _plan(self, algorithm: Algorithm) -> Plan | PolicyPlan:
        """The plan of ``algorithm``, computed on first use (the slow path of a call)."""
        plan = self._plans.get(id(algorithm))
        # The plan holds the algorithm, so its id cannot be reused while the plan is cached.
        if plan is not None and plan.algorithm is algorithm:
            return plan
        plan = make_plan(self._prefix, algorithm)  # rejects unknown algorithms
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[id(algorithm)] = plan
        return plan


def pool_size(client: Any) -> int:
    """How many connections ``client`` may open to one server (per node for a cluster)."""
    size = getattr(client, "max_connections", None)  # asyncio RedisCluster
    if size is None:
        size = getattr(getattr(client, "connection_pool", None), "max_connections", None)
    return size if isinstance(size, int) and size > 0 else 100


def first_error(outcomes: list[Outcome | None]) -> list[Decision]:
    """The decisions of a batch, or its first error raised."""
    for outcome in outcomes:
        if not isinstance(outcome, Decision):
            raise outcome or BackendError("a batched call got no reply")
    return outcomes  # type: ignore[return-value]
