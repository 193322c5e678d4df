"""Chat delivery latency across two messaging replicas, beside its floor, in one run.

  delivery  N users (N/2 matched pairs) each hold a StreamEvents stream, half on the mesh's
            messaging replica and half on a second one; senders post SendMessage at a steady
            (open-loop) rate to the replica their recipient is NOT on, so every message crosses
            replicas through Postgres, the outbox relay and the Redis fan-out. Measured per
            message: sender's acknowledgement -> recipient's stream (and send start -> stream).
  floor     a bare Redis pub/sub round trip between two Python processes at the same rate:
            what any design built on Redis fan-out pays at least.

Rates step up until the delivery p99 passes 100 ms (the highest rate under it is reported as
the sustained rate). One client process drives every stream; its CPU is reported too."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import grpc
from redis.asyncio import Redis

from bench.cpu import CpuMeter
from deploy.local.ephemeral import Mesh
from openhr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from services.common.devkeys import user_id_for
from services.common.event_auth import SIGNATURE_FIELD, EventSigner
from services.common.outbox import new_event, stream_name

GOAL_P99_MS = 50.0
SUSTAINED_P99_MS = 100.0


@dataclass
class MessagingConfig:
    streams: int = 1000
    rates: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0)
    seconds: float = 10.0
    warmup_seconds: float = 2.0
    channels_per_replica: int = 4


@dataclass
class User:
    email: str
    token: str
    user_id: str = ""
    metadata: tuple = ()
    conversation_id: str = ""
    replica: int = 0
    peer: User | None = field(default=None, repr=False)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _summary(values_ms: list[float]) -> dict:
    return {
        "n": len(values_ms),
        "p50_ms": round(_percentile(values_ms, 0.50), 2),
        "p99_ms": round(_percentile(values_ms, 0.99), 2),
        "max_ms": round(max(values_ms), 2) if values_ms else None,
        "mean_ms": round(statistics.fmean(values_ms), 2) if values_ms else None,
    }


# --- the floor: Redis pub/sub between two processes ---------------------------------------------


def _subscriber(url: str, channel: str, count: int, ready, results) -> None:
    async def run() -> None:
        redis = Redis.from_url(url)
        pubsub = redis.pubsub()
        await pubsub.subscribe(channel)
        ready.set()
        latencies = []
        deadline = time.monotonic() + 60 + count
        while len(latencies) < count and time.monotonic() < deadline:
            # None: nothing within the timeout, or the subscribe confirmation (ignored).
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                latencies.append((time.perf_counter_ns() - int(message["data"])) / 1e6)
        results.put(latencies)
        await pubsub.aclose()
        await redis.aclose()

    asyncio.run(run())


async def redis_floor(url: str, rate: float, seconds: float) -> dict:
    """Pub/sub round trips at `rate` for `seconds`, publisher here, subscriber in another process
    (perf_counter is CLOCK_MONOTONIC on Linux: one clock for both processes)."""
    count = max(1, int(rate * seconds))
    context = multiprocessing.get_context("spawn")
    ready, results = context.Event(), context.Queue()
    channel = f"bench-floor-{uuid.uuid4().hex}"
    child = context.Process(target=_subscriber, args=(url, channel, count, ready, results))
    child.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait, 30)
    redis = Redis.from_url(url)
    start = time.perf_counter()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        await redis.publish(channel, str(time.perf_counter_ns()))
    latencies = await asyncio.get_running_loop().run_in_executor(None, results.get, True, 60)
    child.join(10)
    await redis.aclose()
    return _summary(latencies)


# --- delivery through the mesh -------------------------------------------------------------------


async def _open_conversations(mesh: Mesh, users: list[User], log) -> None:
    """Matches the pairs by MatchCreated events, signed with matching's key as the matching
    service publishes them (messaging refuses unsigned ones), and waits until messaging opened
    every conversation."""
    signer = EventSigner(mesh.config.service_keys, "matching")
    redis = Redis.from_url(mesh.redis.url)
    match_ids = []
    async with redis.pipeline(transaction=False) as pipe:
        for first, second in zip(users[::2], users[1::2], strict=True):
            event = new_event("matching", first.user_id)
            event.match_created.match_id = str(uuid.uuid4())
            event.match_created.user_ids.extend([first.user_id, second.user_id])
            match_ids.append(event.match_created.match_id)
            data = event.SerializeToString()
            pipe.xadd(
                stream_name("matching"),
                {"event_id": event.event_id, "data": data, SIGNATURE_FIELD: signer.sign("matching", data)},
            )
        await pipe.execute()
    await redis.aclose()
    pool = await asyncpg.create_pool(mesh.config.database_url, min_size=1, max_size=1)
    started = time.perf_counter()
    try:
        while True:
            rows = await pool.fetch(
                "SELECT match_id, conversation_id FROM messaging.conversations WHERE match_id = ANY($1::uuid[])",
                match_ids,
            )
            if len(rows) == len(match_ids):
                break
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {len(rows)} of {len(match_ids)} conversations opened")
            await asyncio.sleep(0.5)
    finally:
        await pool.close()
    by_match = {str(r["match_id"]): str(r["conversation_id"]) for r in rows}
    for (first, second), match_id in zip(zip(users[::2], users[1::2], strict=True), match_ids, strict=True):
        first.conversation_id = second.conversation_id = by_match[match_id]
    log(f"  {len(match_ids)} conversations opened from MatchCreated in {time.perf_counter() - started:.1f}s")


class Delivery:
    """Every user's stream, and the timings of every message sent in a cell."""

    def __init__(self, stubs: list[list[messaging_pb2_grpc.MessagingServiceStub]], users: list[User]) -> None:
        self._stubs, self._users = stubs, users
        self.sent: dict[str, tuple[float, float]] = {}  # text -> (send start, ack)
        self.received: dict[str, float] = {}
        self.errors = 0
        self._live = 0
        self._tasks: list[asyncio.Task] = []

    def _stub(self, replica: int, user: User) -> messaging_pb2_grpc.MessagingServiceStub:
        channels = self._stubs[replica]
        return channels[hash(user.user_id) % len(channels)]

    async def _follow(self, user: User) -> None:
        call = self._stub(user.replica, user).StreamEvents(
            messaging_pb2.StreamEventsRequest(), metadata=user.metadata
        )
        first = True
        async for response in call:
            if first:
                first = False
                self._live += 1
            if response.WhichOneof("event") == "message" and response.message.message.sender_user_id != user.user_id:
                self.received.setdefault(response.message.message.text, time.perf_counter())

    async def open_streams(self, log) -> None:
        self._tasks = [asyncio.create_task(self._follow(u)) for u in self._users]
        started = time.perf_counter()
        while self._live < len(self._users):
            failed = [t for t in self._tasks if t.done()]
            if failed:
                failed[0].result()
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"only {self._live} of {len(self._users)} streams opened")
            await asyncio.sleep(0.2)
        log(f"  {len(self._users)} streams live in {time.perf_counter() - started:.1f}s")

    async def _send(self, sender: User, text: str) -> None:
        recipient = sender.peer
        request = messaging_pb2.SendMessageRequest(
            conversation_id=sender.conversation_id, client_message_id=str(uuid.uuid4()), text=text
        )
        start = time.perf_counter()
        try:
            await self._stub(1 - recipient.replica, sender).SendMessage(request, metadata=sender.metadata, timeout=30)
        except grpc.aio.AioRpcError:
            self.errors += 1
            return
        self.sent[text] = (start, time.perf_counter())

    async def cell(self, rate: float, seconds: float, label: str) -> dict:
        """Open loop: a send every 1/rate seconds, from random senders."""
        self.sent, self.received, self.errors = {}, {}, 0
        count = max(1, int(rate * seconds))
        pending, start = set(), time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            task = asyncio.create_task(self._send(random.choice(self._users), f"{label}:{i}"))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        achieved = count / (time.perf_counter() - start)
        deadline = time.perf_counter() + 30
        while True:  # the stragglers, up to 30 s
            if all(text in self.received for text in self.sent) or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.05)
        lost = [t for t in self.sent if t not in self.received]
        ack_to_stream = [(self.received[t] - ack) * 1000 for t, (_s, ack) in self.sent.items() if t in self.received]
        send_to_stream = [(self.received[t] - s) * 1000 for t, (s, _a) in self.sent.items() if t in self.received]
        send_to_ack = [(ack - s) * 1000 for s, ack in self.sent.values()]
        return {
            "rate": rate,
            "achieved_rate": round(achieved, 1),
            "messages": len(self.sent),
            "errors": self.errors,
            "undelivered": len(lost),
            "ack_to_stream": _summary(ack_to_stream),
            "send_to_stream": _summary(send_to_stream),
            "send_to_ack": _summary(send_to_ack),
            "delivered_before_ack": sum(1 for v in ack_to_stream if v < 0),
        }

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def run_messaging(mesh: Mesh, config: MessagingConfig, log) -> dict:
    second = mesh.start_replica("messaging", "messaging-bench-2")
    targets = [mesh.target("messaging"), second]
    users = []
    for i in range(config.streams - config.streams % 2):
        email = f"bench-chat-{i}-{uuid.uuid4().hex[:6]}@example.com"
        token = mesh.token(email, ttl_seconds=7200)
        users.append(User(email, token, user_id_for(email), (("authorization", f"Bearer {token}"),), replica=i % 2))
    for first, second_user in zip(users[::2], users[1::2], strict=True):
        first.peer, second_user.peer = second_user, first
    await _open_conversations(mesh, users, log)
    channels = [
        [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(config.channels_per_replica)
        ]
        for target in targets
    ]
    stubs = [[messaging_pb2_grpc.MessagingServiceStub(c) for c in per] for per in channels]
    delivery = Delivery(stubs, users)
    cells, floors = [], []
    meter = CpuMeter(
        {"messaging": [mesh.processes["messaging"].pid, mesh.processes["messaging-bench-2"].pid]}
    )
    try:
        await delivery.open_streams(log)
        await delivery.cell(min(config.rates), config.warmup_seconds, "warmup")
        for rate in config.rates:
            floor = await redis_floor(mesh.redis.url, rate, config.seconds)
            floors.append({"rate": rate, **floor})
            before = meter.snapshot()
            cell = await delivery.cell(rate, config.seconds, f"r{rate:g}")
            cpu = CpuMeter.delta(before, meter.snapshot())
            cell["load_average"] = round(os.getloadavg()[0], 2)
            cell["cpu_cores"] = {
                name: round(seconds / cpu["wall"], 2) for name, seconds in cpu.items() if name != "wall"
            }
            cells.append(cell)
            log(
                f"  {rate:g}/s: ack->stream p50 {cell['ack_to_stream']['p50_ms']} ms, "
                f"p99 {cell['ack_to_stream']['p99_ms']} ms; floor p50 {floor['p50_ms']} ms, p99 {floor['p99_ms']} ms; "
                f"errors {cell['errors']}, undelivered {cell['undelivered']}"
            )
            if cell["ack_to_stream"]["p99_ms"] > SUSTAINED_P99_MS or cell["undelivered"]:
                break
    finally:
        await delivery.close()
        for per in channels:
            for channel in per:
                await channel.close()
        mesh.stop_process("messaging-bench-2")
    sustained = [c["rate"] for c in cells if c["ack_to_stream"]["p99_ms"] <= SUSTAINED_P99_MS and not c["undelivered"]]
    return {
        "config": {
            "streams": len(users),
            "replicas": 2,
            "rates": list(config.rates),
            "seconds": config.seconds,
            "channels_per_replica": config.channels_per_replica,
        },
        "cells": cells,
        "floor": floors,
        "sustained_rate": max(sustained) if sustained else None,
    }


def markdown(result: dict, machine: dict, findings: str = "") -> str:
    from bench.machine import markdown as machine_markdown

    config = result["config"]
    rows = []
    for cell, floor in zip(result["cells"], result["floor"], strict=False):
        a, s = cell["ack_to_stream"], cell["send_to_stream"]
        ratio = a["p50_ms"] / floor["p50_ms"] if floor["p50_ms"] else float("nan")
        rows.append(
            f"| {cell['rate']:g} | {cell['achieved_rate']} | {a['p50_ms']} | {a['p99_ms']} | {s['p50_ms']} | "
            f"{s['p99_ms']} | {cell['send_to_ack']['p50_ms']} | {floor['p50_ms']} | {floor['p99_ms']} | "
            f"{ratio:.1f}x | {cell['errors']} | {cell['undelivered']} | {cell['cpu_cores'].get('messaging')} | "
            f"{cell['cpu_cores'].get('client')} | {cell['cpu_cores'].get('machine')} | "
            f"{cell.get('load_average', 'n/a')} |"
        )
    at_goal = [c for c in result["cells"] if c["ack_to_stream"]["p99_ms"] <= GOAL_P99_MS]
    verdict = (
        f"p99 ack->stream stays within {GOAL_P99_MS:g} ms up to {max(c['rate'] for c in at_goal):g} msg/s"
        if at_goal
        else f"p99 ack->stream is above {GOAL_P99_MS:g} ms at every rate measured"
    )
    return (
        "# Chat delivery latency: sender's acknowledgement -> recipient's stream, 2 messaging replicas\n\n"
        + machine_markdown(machine)
        + "\n## Method\n\n"
        f"- On the `make bench` mesh plus a second messaging replica (`Mesh.start_replica`), {config['streams']} "
        f"users in {config['streams'] // 2} conversations (opened from MatchCreated events) each hold one "
        "`StreamEvents` stream, half on each replica, from one client process "
        f"({config['channels_per_replica']} HTTP/2 connections per replica).\n"
        "- Each cell sends at a steady open-loop rate for "
        f"{config['seconds']:g} s from random senders, each `SendMessage` going to the replica its recipient is "
        "not on: commit in Postgres (message, seq, two event-log rows, outbox) -> the outbox relay of the "
        "sending replica -> Redis stream `events.messaging.live` -> the other replica's one reader -> the "
        "recipient's queue -> gRPC stream.\n"
        "- Latency per message: recipient's stream receipt minus the sender's acknowledgement (ack->stream; "
        "negative when the stream was faster than the ack), and minus the send start (send->stream). "
        "All times on one clock in one process.\n"
        "- Floor, in the same run at the same rate: a Redis `PUBLISH` in this process to a `SUBSCRIBE` in "
        "another Python process (redis-py asyncio, both), timestamped with `perf_counter_ns` "
        "(CLOCK_MONOTONIC, one clock across processes).\n"
        f"- Rates step up until the p99 passes {SUSTAINED_P99_MS:g} ms; the highest rate under it is the "
        "sustained rate.\n\n"
        "## Results\n\n"
        "| msg/s | achieved | ack->stream p50 ms | p99 ms | send->stream p50 ms | p99 ms | send->ack p50 ms | "
        "Redis floor p50 ms | floor p99 ms | p50 / floor | errors | undelivered | messaging cores | "
        "client cores | machine cores | load average |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        "- CPU columns are cores busy during the cell (CPU seconds / wall seconds): both messaging replicas, "
        "this client, and the whole machine (every process: Postgres, Redis, Envoy, and whatever else runs "
        "on the box). Load average (1 min) at the end of the cell: on a 2-core machine anything above 2 means "
        "processes queued for a core, which lands directly in the tail latencies.\n"
        f"- Goal: p99 <= {GOAL_P99_MS:g} ms at {config['streams']} streams: {verdict}.\n"
        f"- Highest sustained rate with p99 <= {SUSTAINED_P99_MS:g} ms and nothing lost: "
        f"{result['sustained_rate'] if result['sustained_rate'] is not None else 'none of the rates measured'}"
        " msg/s.\n\n"
        + (findings.strip() + "\n\n" if findings else "")
        + "## Raw data\n\n`bench/results/messaging.json`.\n"
    )
