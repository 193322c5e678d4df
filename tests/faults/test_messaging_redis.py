"""Redis restarts mid-conversation: nothing acknowledged is lost, and the stream recovers
(Postgres holds every message; the outbox publishes what was committed meanwhile)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.messaging.v1 import messaging_pb2
from tests.messaging.support import WAIT, matched_pair, send, stub
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(240)


async def test_redis_restart_loses_no_acknowledged_message(faulty_mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(faulty_mesh.target("messaging")) as channel:
        alice, bob, conversation_id = await matched_pair(faulty_mesh, channel)
        received: list[str] = []
        position = {"cursor": "", "live": False}

        async def follow() -> None:
            """Bob's client: keeps its cursor and reconnects whenever the stream drops."""
            while True:
                call = stub(channel).StreamEvents(
                    messaging_pb2.StreamEventsRequest(cursor=position["cursor"]), metadata=bob.metadata
                )
                try:
                    async for response in call:
                        position["cursor"] = response.cursor or position["cursor"]
                        position["live"] = True
                        if response.WhichOneof("event") == "message":
                            received.append(response.message.message.text)
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)  # reconnect pacing of the client, not a test wait

        follower = asyncio.create_task(follow())
        try:
            await eventually(lambda: position["live"], message="bob's stream", within=WAIT)
            await send(channel, alice, conversation_id, "before")
            await eventually(lambda: received == ["before"], message="the first message", within=WAIT)
            faulty_mesh.redis.stop()
            acknowledged = ["before"]
            for text in ("during 1", "during 2"):
                await send(channel, alice, conversation_id, text)
                acknowledged.append(text)
            faulty_mesh.redis.start()
            await send(channel, alice, conversation_id, "after")
            acknowledged.append("after")
            await eventually(
                lambda: len(received) >= len(acknowledged), message="every acknowledged message", within=WAIT
            )
            assert received == acknowledged
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            if not faulty_mesh.redis.is_running():
                faulty_mesh.redis.start()
