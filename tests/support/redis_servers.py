"""Redis servers that a test starts and stops itself: a standalone server (for restarts and
outages) and a 3-master Redis Cluster, on loopback ports that are free, stopped by PID.

The shared server on 6379 is never touched. Without a ``redis-server`` binary the tests skip
locally and fail under ``CI=true``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.support.servers import IN_CI

__all__ = ["RedisCluster", "RedisProcess", "free_port", "require_binary"]

HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384


def require_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server is not installed"
        if IN_CI:
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(f"{message}; install it with scripts/services.sh")
    return path


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(with_bus: bool = False) -> int:
    """A free loopback port (and port + 10000 too, for a cluster node's bus)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if not with_bus or (port + 10000 < 65536 and _port_free(port + 10000)):
            return port
    raise RuntimeError("no free port found")


def _wait(predicate: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


class RedisProcess:
    """One ``redis-server`` without persistence, as a child process on ``port``."""

    def __init__(self, directory: Path, port: int | None = None, *extra: str) -> None:
        self.binary = require_binary()
        self.directory = directory
        self.port = port if port is not None else free_port(with_bus=bool(extra))
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5)

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory),
                *self.extra]  # fmt: skip
        log = (self.directory / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with self.client() as client:
            _wait(client.ping, f"redis-server on port {self.port}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def shutdown_saving(self) -> None:
        """Stop the server after it saves its data: a restart then keeps the state but loses
        the script cache, like a real restart with persistence."""
        with self.client() as client:
            client.shutdown(save=True)
        process, self.process = self.process, None
        if process is not None:
            process.wait(10)


class RedisCluster:
    """Three masters on loopback, slots split evenly, no replicas."""

    def __init__(self, directory: Path) -> None:
        self.nodes: list[RedisProcess] = []
        for _ in range(3):
            port = free_port(with_bus=True)
            config = str(directory / f"nodes-{port}.conf")
            options = ("--cluster-enabled", "yes", "--cluster-config-file", config,
                       "--cluster-node-timeout", "5000")  # fmt: skip
            self.nodes.append(RedisProcess(directory, port, *options))

    @property
    def url(self) -> str:
        """The documented URL form: any one node."""
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        step = CLUSTER_SLOTS // len(self.nodes)
        clients = [node.client() for node in self.nodes]
        try:
            for i, client in enumerate(clients):
                first = i * step
                last = CLUSTER_SLOTS - 1 if i == len(clients) - 1 else first + step - 1
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", HOST, node.port)

            def ready() -> bool:
                for client in clients:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info or "cluster_known_nodes:3" not in info:
                        return False
                    if len(client.execute_command("CLUSTER", "SLOTS")) != len(clients):
                        return False
                return True

            _wait(ready, "the Redis Cluster to reach cluster_state:ok", timeout=30)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
