"""Closed-loop load generation: `concurrency` workers, each with one request in flight at a time, for a
fixed time and at most a fixed number of requests; latency of every request measured by the client.

A target is opened as a session (connections established before the clock starts) whose `call(worker,
profile_id)` performs one GET-profile and says whether it succeeded."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import grpc
import httpx

from bench.http1 import Http1Client
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc


class Session(ABC):
    @abstractmethod
    async def call(self, worker: int, profile_id: str) -> bool:
        """One GET-profile; True when it succeeded."""

    async def close(self) -> None:
        return None


class Http1Session(Session):
    """One keep-alive HTTP/1.1 connection per worker (bench/http1.py)."""

    def __init__(self, host: str, port: int, prefix: str, tokens: list[str], concurrency: int) -> None:
        self._prefix = prefix
        accept = {"accept": "application/json"}
        self._clients = [
            Http1Client(host, port, {"authorization": f"Bearer {tokens[w % len(tokens)]}", **accept})
            for w in range(concurrency)
        ]

    async def open(self) -> Http1Session:
        await asyncio.gather(*(c.connect() for c in self._clients))
        return self

    async def call(self, worker: int, profile_id: str) -> bool:
        status, _ = await self._clients[worker].get(self._prefix + profile_id)
        return status == 200

    async def close(self) -> None:
        for client in self._clients:
            client.close()


class HttpxSession(Session):
    """httpx.AsyncClient over HTTP/1.1 with a pool of `concurrency` keep-alive connections."""

    def __init__(self, base_url: str, prefix: str, tokens: list[str], concurrency: int) -> None:
        self._prefix = prefix
        self._headers = [{"authorization": f"Bearer {tokens[w % len(tokens)]}"} for w in range(concurrency)]
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(base_url=base_url, http1=True, http2=False, limits=limits, timeout=10)
        self._concurrency = concurrency

    async def open(self, warm_id: str) -> HttpxSession:
        # Fill the pool before the clock starts.
        await asyncio.gather(*(self.call(w, warm_id) for w in range(self._concurrency)))
        return self

    async def call(self, worker: int, profile_id: str) -> bool:
        response = await self._client.get(self._prefix + profile_id, headers=self._headers[worker])
        return response.status_code == 200

    async def close(self) -> None:
        await self._client.aclose()


class GrpcSession(Session):
    """grpc.aio: one channel (one HTTP/2 connection), every worker's calls multiplexed on it."""

    def __init__(self, target: str, tokens: list[str], concurrency: int) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = profile_pb2_grpc.ProfileServiceStub(self._channel)
        self._metadata = [(("authorization", f"Bearer {tokens[w % len(tokens)]}"),) for w in range(concurrency)]

    async def open(self) -> GrpcSession:
        await asyncio.wait_for(self._channel.channel_ready(), 10)
        return self

    async def call(self, worker: int, profile_id: str) -> bool:
        try:
            await self._stub.GetProfile(
                profile_pb2.GetProfileRequest(profile_id=profile_id), metadata=self._metadata[worker], timeout=10
            )
        except grpc.aio.AioRpcError:
            return False
        return True

    async def close(self) -> None:
        await self._channel.close()


@dataclass
class CellStats:
    ok: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the successful requests' latencies, in ms."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
        return ordered[rank - 1]


async def run_open_loop(
    session: Session, max_in_flight: int, ids: list[str], *, rate: float, seconds: float, seed: int = 0
) -> CellStats:
    """Open loop: requests arrive at `rate` per second (Poisson, fixed seed) whatever the latency, on at most
    `max_in_flight` connections. Latency counts from the scheduled arrival, so time spent waiting for a free
    connection counts too (no coordinated omission). Watchdog as in run_cell."""
    rng = random.Random(seed)
    free: asyncio.Queue[int] = asyncio.Queue()
    for w in range(max_in_flight):
        free.put_nowait(w)
    latencies: list[float] = []
    errors = 0
    perf = time.perf_counter

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        worker = await free.get()
        try:
            ok = await session.call(worker, ids[i % len(ids)])
        except Exception:
            ok = False
        finally:
            free.put_nowait(worker)
        if ok:
            latencies.append((perf() - scheduled) * 1000)
        else:
            errors += 1

    start = perf()
    arrival, tasks, i = start, [], 0
    while True:
        arrival += rng.expovariate(rate)
        if arrival - start >= seconds:
            break
        delay = arrival - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, arrival)))
        i += 1
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=15)
        for task in pending:
            task.cancel()
        errors += len(pending)
    # Throughput over the arrival window: the offered rate as carried (completions after it still count).
    return CellStats(ok=len(latencies), errors=errors, seconds=max(seconds, 1e-9), latencies_ms=latencies)


async def run_cell(
    session: Session, concurrency: int, ids: list[str], *, seconds: float, max_requests: int
) -> CellStats:
    """Runs until `seconds` have passed or `max_requests` were started; a watchdog cancels it at
    `seconds + 15` whatever happens (unfinished requests count as errors)."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        perf = time.perf_counter
        while True:
            i = next(counter)
            if i >= max_requests:
                return
            t0 = perf()
            if t0 >= deadline:
                return
            try:
                ok = await session.call(w, ids[i % len(ids)])
            except Exception:
                ok = False
            t1 = perf()
            if ok:
                latencies.append((t1 - t0) * 1000)
            else:
                errors += 1

    tasks = [asyncio.ensure_future(worker(w)) for w in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=seconds + 15)
    for task in pending:
        task.cancel()
    errors += len(pending)
    elapsed = time.perf_counter() - start
    return CellStats(ok=len(latencies), errors=errors, seconds=elapsed, latencies_ms=latencies)
