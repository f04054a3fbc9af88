"""A bounded HTTP load run: the example FastAPI app on uvicorn, Redis behind it, and clients in
several processes.

    python -m benchmarks.load.http --seconds 60 --processes 2 --connections 16

The app (``benchmarks/load/app.py``) is served by one uvicorn worker on a free loopback port,
with the app-wide limit (``--rate`` per client IP, default ``20/10s``) in Redis
(``--redis-url``, default ``LIMITS_CORE_REDIS_URL`` or the local server) under a prefix of the
run's own, deleted afterwards. Each client process keeps ``--connections`` HTTP/1.1
connections busy with ``GET /``, as if behind the app's trusted proxy, spreading the requests
over ``--clients`` client addresses (``X-Forwarded-For``). Printed (and written as JSON with
``--json``): requests per second, p50/p99/p99.9 latency, errors (failed connections and 5xx),
and the requests admitted next to the most the limit allows over the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from limits_core import Rate

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client_address(i: int) -> str:
    return f"198.51.100.{i % 250 + 1}" if i < 250 else f"203.0.{i // 250}.{i % 250 + 1}"


async def _connection(
    port: int, deadline: float, addresses: list[str], first: int, stride: int, out: dict[str, Any]
) -> None:
    latencies: list[float] = out["latencies"]
    statuses: Counter[int] = out["statuses"]
    errors: Counter[str] = out["errors"]
    admitted: Counter[str] = out["admitted"]
    i = first
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while time.monotonic() < deadline:
                address = addresses[i % len(addresses)]
                i += stride
                request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: {address}\r\n\r\n"
                start = time.perf_counter()
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                status = int(head[9:12])
                statuses[status] += 1
                if status == 200:
                    admitted[address] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
        finally:
            writer.close()


def _client_process(
    port: int, seconds: float, connections: int, addresses: list[str], index: int, queue: Any
) -> None:
    out: dict[str, Any] = {
        "latencies": [],
        "statuses": Counter(),
        "errors": Counter(),
        "admitted": Counter(),
    }

    async def run() -> None:
        out["began"] = time.time()
        deadline = time.monotonic() + seconds
        stride = connections * (index + 1)
        await asyncio.gather(
            *(
                _connection(port, deadline, addresses, index * connections + c, stride, out)
                for c in range(connections)
            )
        )

    asyncio.run(run())
    out["ended"] = time.time()
    queue.put(out)


def _start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "benchmarks.load.app:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-proxy-headers", "--log-level", "warning",
               "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("uvicorn exited before serving") from None
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("uvicorn did not start in 30 s")


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    with redis.Redis.from_url(url) as client:
        for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
            client.delete(key)


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    *,
    seconds: float = 60.0,
    processes: int = 2,
    connections: int = 16,
    clients: int = 100,
    rate: str = "20/10s",
    redis_url: str | None = None,
) -> dict[str, Any]:
    """Run the load; return the figures (see the module docstring)."""
    url = redis_url or os.environ.get("LIMITS_CORE_REDIS_URL", DEFAULT_REDIS_URL)
    limit = Rate.parse(rate)
    prefix = f"limits-core-load:{uuid.uuid4().hex[:12]}:"
    port = _free_port()
    env = {**os.environ, "LIMITS_CORE_REDIS_URL": url, "LIMITS_CORE_LOAD_PREFIX": prefix,
           "LIMITS_CORE_LOAD_RATE": rate, "PYTHONPATH": str(ROOT)}  # fmt: skip
    addresses = [client_address(i) for i in range(clients)]
    server = _start_server(port, env)
    try:
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers = [
            context.Process(
                target=_client_process, args=(port, seconds, connections, addresses, i, queue)
            )
            for i in range(processes)
        ]
        for worker in workers:
            worker.start()
        parts = [queue.get(timeout=seconds + 120) for _ in workers]
        # From the first request sent to the last answer, whatever process start-up took.
        elapsed = max(p["ended"] for p in parts) - min(p["began"] for p in parts)
        for worker in workers:
            worker.join()
    finally:
        server.terminate()
        server.wait(30)
        _delete_prefix(url, prefix)
    latencies = sorted(x for part in parts for x in part["latencies"])
    statuses: Counter[int] = sum((part["statuses"] for part in parts), Counter())
    errors: Counter[str] = sum((part["errors"] for part in parts), Counter())
    admitted: Counter[str] = sum((part["admitted"] for part in parts), Counter())
    # Windows open on a key's first admitted hit and last one period: a run of T seconds
    # holds at most floor(T / period) + 1 of them per client.
    windows = int(elapsed // limit.period) + 1
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    return {
        "seconds": round(elapsed, 2),
        "processes": processes,
        "connections_per_process": connections,
        "clients": clients,
        "rate_per_client": rate,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(_percentile(latencies, 0.50) * 1000, 2),
            "p99": round(_percentile(latencies, 0.99) * 1000, 2),
            "p99.9": round(_percentile(latencies, 0.999) * 1000, 2),
            "max": round(latencies[-1] * 1000, 2) if latencies else None,
        },
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": server_errors + sum(errors.values()),
        "error_types": dict(errors),
        "admitted": sum(admitted.values()),
        "admitted_bound": clients * limit.limit * windows,
        "most_admitted_one_client": max(admitted.values(), default=0),
        "bound_one_client": limit.limit * windows,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.http",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="duration (default 60)")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="per process (default 16)")
    parser.add_argument("--clients", type=int, default=100, help="client addresses (default 100)")
    parser.add_argument("--rate", default="20/10s", help="limit per client (default 20/10s)")
    parser.add_argument("--redis-url", help="default: LIMITS_CORE_REDIS_URL or localhost:6379")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    figures = run(
        seconds=args.seconds,
        processes=args.processes,
        connections=args.connections,
        clients=args.clients,
        rate=args.rate,
        redis_url=args.redis_url,
    )
    text = json.dumps(figures, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
