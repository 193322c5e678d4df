"""Helpers of the messaging tests: replicas, matched pairs, and stream readers that collect
events and wait on conditions (never on time)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from deploy.local.ephemeral import Mesh
from openhr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from tests.events import publish_match
from tests.users import User, new_user
from tests.waiting import eventually

WAIT = 60.0  # generous: CI shares 2 cores with the whole mesh
DIGEST_INTERVAL = 2.0  # seconds, on the second replica only (the mesh's own replica mails hourly)


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The reason of the google.rpc.ErrorInfo an error carries (openhr.common.v1.ErrorReason)."""
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def stub(channel: grpc.aio.Channel) -> messaging_pb2_grpc.MessagingServiceStub:
    return messaging_pb2_grpc.MessagingServiceStub(channel)


async def create_profile(rest, user: User, name: str) -> None:
    response = await rest.post("/v1/profiles", json={"displayName": name}, headers=user.headers)
    assert response.status_code == 200, response.text


async def conversations(channel: grpc.aio.Channel, user: User) -> list[messaging_pb2.Conversation]:
    response = await stub(channel).ListConversations(messaging_pb2.ListConversationsRequest(), metadata=user.metadata)
    return list(response.conversations)


async def matched_pair(mesh: Mesh, channel: grpc.aio.Channel, rest=None) -> tuple[User, User, str]:
    """Two fresh users (with profiles when `rest` is given), matched by a MatchCreated event;
    returns them and their conversation id once it is open."""
    (pair,) = await matched_pairs(mesh, channel, 1, rest)
    return pair


async def matched_pairs(mesh: Mesh, channel: grpc.aio.Channel, count: int, rest=None) -> list[tuple[User, User, str]]:
    """`count` matched pairs, their matches published at once (one wait for all to open)."""
    pairs = [(new_user(mesh, "alice"), new_user(mesh, "bob")) for _ in range(count)]
    if rest is not None:
        for alice, bob in pairs:
            await create_profile(rest, alice, "Alice")
            await create_profile(rest, bob, "Bob")
    for alice, bob in pairs:
        await publish_match(mesh, alice.user_id, bob.user_id)
    opened: dict[str, str] = {}

    async def all_open() -> bool:
        for _alice, bob in pairs:
            if bob.user_id not in opened and (found := await conversations(channel, bob)):
                opened[bob.user_id] = found[0].conversation_id
        return len(opened) == count

    await eventually(all_open, message=lambda: f"{count - len(opened)} conversations to open", within=WAIT)
    return [(alice, bob, opened[bob.user_id]) for alice, bob in pairs]


async def send(channel, user: User, conversation_id: str, text: str, client_id: str | None = None):
    request = messaging_pb2.SendMessageRequest(
        conversation_id=conversation_id, client_message_id=client_id or str(uuid.uuid4()), text=text
    )
    return (await stub(channel).SendMessage(request, metadata=user.metadata)).message


class Reader:
    """Reads a user's StreamEvents in the background, keeping every event but heartbeats."""

    def __init__(self, channel: grpc.aio.Channel, user: User, cursor: str = "") -> None:
        self.events: list[messaging_pb2.StreamEventsResponse] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._call = stub(channel).StreamEvents(
            messaging_pb2.StreamEventsRequest(cursor=cursor), metadata=user.metadata
        )
        self.heartbeats = 0
        self.position = cursor  # the cursor of the last response that carried one
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for response in self._call:
                if response.cursor:
                    self.position = response.cursor
                if response.WhichOneof("event") == "heartbeat":
                    self.heartbeats += 1
                else:
                    self.events.append(response)
        except grpc.aio.AioRpcError as exc:
            self.error = exc

    def of(self, kind: str) -> list:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    @property
    def texts(self) -> list[str]:
        return [m.message.text for m in self.of("message")]

    async def wait(self, check: Callable[[Reader], object], what: str = "events") -> None:
        await eventually(lambda: check(self) or (self.error and _raise(self.error)), message=what, within=WAIT)

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _raise(error: Exception):
    raise error


@asynccontextmanager
async def reading(channel: grpc.aio.Channel, user: User, cursor: str = ""):
    """A Reader once its stream is live (the first heartbeat, sent after the replay)."""
    reader = Reader(channel, user, cursor)
    try:
        await reader.wait(lambda r: r.heartbeats, "the stream to open")
        yield reader
    finally:
        await reader.close()
