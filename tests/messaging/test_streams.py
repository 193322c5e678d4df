"""The per-user event stream: grpc-web through Envoy, resync of unusable cursors, typing
that expires by itself, presence, and a replica killed under streaming clients."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.messaging.v1 import messaging_pb2
from tests.grpcweb import DATA, call_headers, frame, frames
from tests.messaging.support import WAIT, matched_pair, matched_pairs, reading, send, stub
from tests.users import new_user
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(240)
SERVICE = "/openhr.messaging.v1.MessagingService"


async def test_stream_over_grpc_web_through_envoy(mesh: Mesh, rest, channel_b) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_b)
    body = frame(messaging_pb2.StreamEventsRequest().SerializeToString())
    headers = call_headers(bob.token)
    async with rest.stream("POST", f"{SERVICE}/StreamEvents", content=body, headers=headers) as stream:
        assert stream.status_code == 200
        incoming = frames(stream)
        first = messaging_pb2.StreamEventsResponse.FromString((await anext(incoming)).payload)
        assert first.WhichOneof("event") == "heartbeat" and first.cursor
        await send(channel_b, alice, conversation_id, "through the edge")
        received = await anext(incoming)
        assert received.flag == DATA
        event = messaging_pb2.StreamEventsResponse.FromString(received.payload)
        assert event.message.message.text == "through the edge"
        assert int(event.cursor) > int(first.cursor)


async def test_unusable_cursors_get_a_resync_signal(mesh: Mesh, channel_a, channel_b) -> None:
    """Replica b keeps only the newest 5 events per user (OPENHR_STREAM_KEEP_EVENTS)."""
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    for i in range(8):
        await send(channel_a, alice, conversation_id, f"m{i}")
    async with reading(channel_b, bob, cursor="1") as too_old:
        pass  # opened with a cursor older than the kept events: what it got is checked below
    (resync,) = too_old.of("resync")
    assert "too old" in resync.reason
    assert too_old.events[0].WhichOneof("event") == "resync" and too_old.texts == []
    async with reading(channel_a, bob, cursor="999999") as unknown:
        await send(channel_a, alice, conversation_id, "after the resync")
        await unknown.wait(lambda r: r.texts)
    assert unknown.of("resync")[0].reason == "unknown cursor" and unknown.texts == ["after the resync"]
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        async for _ in stub(channel_a).StreamEvents(
            messaging_pb2.StreamEventsRequest(cursor="abc"), metadata=bob.metadata
        ):
            pass  # no event may arrive: the call must fail on its cursor
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_typing_indicator_expires_by_itself(mesh: Mesh, channel_a, channel_b) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    request = messaging_pb2.SetTypingRequest(conversation_id=conversation_id, typing=True)
    async with reading(channel_b, bob) as watcher:
        await stub(channel_a).SetTyping(request, metadata=alice.metadata)
        await stub(channel_a).SetTyping(request, metadata=alice.metadata)  # throttled: extends only
        await watcher.wait(lambda r: [t.typing for t in r.of("typing")] == [True, False], "typing, then its end")
    started, stopped = watcher.of("typing")
    assert started.user_id == alice.user_id and started.conversation_id == conversation_id
    assert started.HasField("expire_time")
    assert not stopped.typing and all(not e.cursor for e in watcher.events if e.WhichOneof("event") == "typing")


async def test_presence_follows_open_streams(mesh: Mesh, channel_a, channel_b) -> None:
    alice, bob, _conversation_id = await matched_pair(mesh, channel_a)
    async with reading(channel_b, bob) as watcher:
        async with reading(channel_a, alice):
            await watcher.wait(lambda r: r.of("presence"), "alice online")
            # Within the throttle window: announced when it ends, not dropped.
            await stub(channel_a).SetPresence(
                messaging_pb2.SetPresenceRequest(state=messaging_pb2.PRESENCE_STATE_AWAY), metadata=alice.metadata
            )
            await watcher.wait(lambda r: len(r.of("presence")) >= 2, "alice away")
        await watcher.wait(lambda r: len(r.of("presence")) >= 3, "alice offline")
    states = [(p.user_id, p.state) for p in watcher.of("presence")]
    assert states == [
        (alice.user_id, messaging_pb2.PRESENCE_STATE_ONLINE),
        (alice.user_id, messaging_pb2.PRESENCE_STATE_AWAY),
        (alice.user_id, messaging_pb2.PRESENCE_STATE_OFFLINE),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as offline_is_not_settable:
        await stub(channel_a).SetPresence(
            messaging_pb2.SetPresenceRequest(state=messaging_pb2.PRESENCE_STATE_OFFLINE), metadata=alice.metadata
        )
    assert offline_is_not_settable.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class ResilientReader:
    """A client that follows its stream and, when its replica goes away, reconnects to the
    next one with its last cursor."""

    def __init__(self, channels: list[grpc.aio.Channel], user) -> None:
        self.channels, self.user = channels, user
        self.texts: list[str] = []
        self.position = ""
        self.reconnects = 0
        self.live = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        for channel in self.channels:
            call = stub(channel).StreamEvents(
                messaging_pb2.StreamEventsRequest(cursor=self.position), metadata=self.user.metadata
            )
            try:
                async for response in call:
                    if response.cursor:
                        self.position = response.cursor
                    if response.WhichOneof("event") == "heartbeat":
                        self.live.set()
                    elif response.WhichOneof("event") == "message":
                        self.texts.append(response.message.message.text)
            except grpc.aio.AioRpcError:
                self.reconnects += 1

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


CLIENTS = 50  # users, two to a conversation, each streaming and sending


async def test_killing_a_replica_loses_duplicates_and_reorders_nothing(mesh: Mesh, channel_a) -> None:
    """50 clients stream from and send through a replica that is killed mid-conversation: the
    sends retry on the other replica with their client_message_id, the streams reconnect there
    with their cursor, and every client ends with exactly its conversation's acknowledged
    messages in seq order. All clients share one channel per replica, as a process would."""
    doomed_target = mesh.start_replica("messaging", "messaging-doomed")
    pairs = await matched_pairs(mesh, channel_a, CLIENTS // 2)
    per_client, kill_at = 6, 2
    killed = asyncio.Event()
    acknowledged: dict[str, dict[int, str]] = {conversation_id: {} for _a, _b, conversation_id in pairs}
    clients = [(user, conversation_id) for alice, bob, conversation_id in pairs for user in (alice, bob)]
    async with grpc.aio.insecure_channel(doomed_target) as doomed:
        readers = [ResilientReader([doomed, channel_a], user) for user, _c in clients]
        await eventually(lambda: all(r.live.is_set() for r in readers), message="every stream to open", within=WAIT)

        async def client(index: int, user, conversation_id: str) -> None:
            for i in range(per_client):
                if index == 0 and i == kill_at:  # while the others' sends are under way
                    process = mesh.processes.pop("messaging-doomed")
                    process.kill()
                    process.wait()
                    killed.set()
                text, client_id = f"{index}:{i}", str(uuid.uuid4())
                for channel in (doomed, channel_a):  # the same client_message_id on retry
                    try:
                        message = await send(channel, user, conversation_id, text, client_id)
                    except grpc.aio.AioRpcError:
                        continue
                    acknowledged[conversation_id][message.seq] = text
                    break
                if index != 0 and i == kill_at:
                    await killed.wait()

        await asyncio.gather(*(client(i, user, c) for i, (user, c) in enumerate(clients)))
        expected = {c: [texts[seq] for seq in sorted(texts)] for c, texts in acknowledged.items()}
        try:
            await eventually(
                lambda: all(len(r.texts) >= len(expected[c]) for r, (_u, c) in zip(readers, clients, strict=True)),
                message="every acknowledged message at both participants",
                within=WAIT,
            )
        finally:
            for reader in readers:
                await reader.close()
    for reader, (_user, conversation_id) in zip(readers, clients, strict=True):
        assert reader.texts == expected[conversation_id]
    assert all(sorted(texts) == list(range(1, 2 * per_client + 1)) for texts in acknowledged.values())
    assert [r.reconnects for r in readers] == [1] * CLIENTS


async def test_heartbeats_keep_an_idle_stream_alive(mesh: Mesh, channel_b) -> None:
    async with reading(channel_b, new_user(mesh)) as idle:
        await idle.wait(lambda r: r.heartbeats >= 2, "a second heartbeat")
