"""Only participants read or write a conversation: over gRPC, REST and grpc-web through
Envoy, and in Postgres itself (row-level security underneath the service)."""

from __future__ import annotations

import uuid

import asyncpg
import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.messaging.v1 import messaging_pb2
from tests.grpcweb import call_headers, frame
from tests.messaging.support import conversations, matched_pair, send, stub
from tests.users import new_user

SERVICE = "/openhr.messaging.v1.MessagingService"


async def test_non_participants_read_nothing_over_grpc(mesh: Mesh, channel_a) -> None:
    alice, _bob, conversation_id = await matched_pair(mesh, channel_a)
    await send(channel_a, alice, conversation_id, "private")
    eve = new_user(mesh, "eve")
    api = stub(channel_a)
    calls = [
        api.ListMessages(messaging_pb2.ListMessagesRequest(conversation_id=conversation_id), metadata=eve.metadata),
        api.SendMessage(
            messaging_pb2.SendMessageRequest(
                conversation_id=conversation_id, client_message_id=str(uuid.uuid4()), text="hi"
            ),
            metadata=eve.metadata,
        ),
        api.MarkRead(messaging_pb2.MarkReadRequest(conversation_id=conversation_id, seq=1), metadata=eve.metadata),
        api.SetTyping(
            messaging_pb2.SetTypingRequest(conversation_id=conversation_id, typing=True), metadata=eve.metadata
        ),
        api.BlockConversation(
            messaging_pb2.BlockConversationRequest(conversation_id=conversation_id), metadata=eve.metadata
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert await conversations(channel_a, eve) == []


async def test_non_participants_read_nothing_over_rest(mesh: Mesh, rest, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    await send(channel_a, alice, conversation_id, "private")
    eve = new_user(mesh, "eve")
    path = f"/v1/conversations/{conversation_id}/messages"

    def body(text: str) -> dict:
        return {"clientMessageId": str(uuid.uuid4()), "text": text}

    assert (await rest.get(path, headers=eve.headers)).status_code == 404
    assert (await rest.post(path, json=body("x"), headers=eve.headers)).status_code == 404
    assert (await rest.get("/v1/conversations", headers=eve.headers)).json().get("conversations", []) == []
    # ... while the participants do, over the same routes.
    listed = await rest.get(path, headers=bob.headers)
    assert listed.status_code == 200 and [m["text"] for m in listed.json()["messages"]] == ["private"]
    sent = await rest.post(path, json=body("over REST"), headers=bob.headers)
    assert sent.status_code == 200 and sent.json()["message"]["seq"] == "2"
    too_long = await rest.post(path, json=body("x" * 1001), headers=bob.headers)
    assert too_long.status_code == 400 and "text" in too_long.json()["message"]


async def test_non_participants_read_nothing_over_grpc_web(mesh: Mesh, rest, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    await send(channel_a, alice, conversation_id, "private")
    request = frame(messaging_pb2.ListMessagesRequest(conversation_id=conversation_id).SerializeToString())
    eve = new_user(mesh, "eve")
    refused = await rest.post(f"{SERVICE}/ListMessages", content=request, headers=call_headers(eve.token))
    assert refused.headers["grpc-status"] == str(grpc.StatusCode.NOT_FOUND.value[0])
    allowed = await rest.post(f"{SERVICE}/ListMessages", content=request, headers=call_headers(bob.token))
    assert allowed.status_code == 200 and b"private" in allowed.content


async def _as(db: asyncpg.Pool, user_id: str, query: str, *args):
    """A query as the app role on behalf of `user_id`, as services/common/db.py runs it; rolled back."""
    async with db.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.execute(
                "SELECT set_config('role', 'messaging_app', true), set_config('app.user_id', $1, true)", user_id
            )
            return await connection.fetch(query, *args)
        finally:
            await transaction.rollback()


async def test_postgres_itself_hides_other_peoples_conversations(mesh: Mesh, db, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    await send(channel_a, alice, conversation_id, "private")
    eve = new_user(mesh, "eve")
    for table in ("conversations", "members", "messages"):
        query = f"SELECT * FROM messaging.{table} WHERE conversation_id = $1"
        assert await _as(db, eve.user_id, query, conversation_id) == []
        assert len(await _as(db, bob.user_id, query, conversation_id)) >= 1
    assert await _as(db, eve.user_id, "SELECT * FROM messaging.stream_events WHERE user_id = $1", bob.user_id) == []
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as(
            db,
            eve.user_id,
            "INSERT INTO messaging.messages (conversation_id, seq, sender_id, client_message_id, text) "
            "VALUES ($1, 99, $2, $3, 'forged')",
            conversation_id,
            eve.user_id,
            uuid.uuid4(),
        )


async def test_postgres_itself_refuses_messages_to_a_deleted_account(mesh: Mesh, rest, db, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    insert = (
        "INSERT INTO messaging.messages (conversation_id, seq, sender_id, client_message_id, text) "
        "VALUES ($1, 99, $2, $3, 'past the servicer') RETURNING seq"
    )
    assert await _as(db, alice.user_id, insert, conversation_id, alice.user_id, uuid.uuid4())  # rolled back
    assert (await rest.delete("/v1/me", headers=bob.headers)).status_code == 200
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as(db, alice.user_id, insert, conversation_id, alice.user_id, uuid.uuid4())
