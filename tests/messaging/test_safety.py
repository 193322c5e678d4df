"""Blocking, reporting, notifications, the email digest and the user's own data."""

from __future__ import annotations

import json
import mailbox
from collections.abc import Awaitable
from email.utils import parsedate_to_datetime

import asyncpg
import grpc
import pytest
from google.protobuf import json_format
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.events.v1 import events_pb2
from openhr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from services.common.service_auth import ServiceTokenIssuer
from tests.messaging.support import WAIT, conversations, error_reason, matched_pair, reading, send, stub
from tests.metrics import scrape
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(180)


async def _blocks_of(mesh: Mesh, conversation_id: str) -> list:
    redis = Redis.from_url(mesh.redis.url)
    try:
        entries = await redis.xrange("events.messaging")
    finally:
        await redis.aclose()
    events = (events_pb2.Event.FromString(fields[b"data"]) for _id, fields in entries)
    return [
        e.conversation_blocked
        for e in events
        if e.WhichOneof("payload") == "conversation_blocked"
        and e.conversation_blocked.conversation_id == conversation_id
    ]


async def test_a_blocked_user_cannot_send_and_matching_hears_of_it(mesh: Mesh, channel_a, channel_b) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    await send(channel_a, bob, conversation_id, "unwanted")
    async with reading(channel_b, bob) as blocked_side:
        blocked = await stub(channel_a).BlockConversation(
            messaging_pb2.BlockConversationRequest(conversation_id=conversation_id), metadata=alice.metadata
        )
        assert blocked.conversation.blocked
        await blocked_side.wait(lambda r: r.of("block"), "the block event")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await send(channel_b, bob, conversation_id, "again")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    (blocked_event,) = await eventually(
        lambda: _blocks_of(mesh, conversation_id), message="ConversationBlocked", within=WAIT
    )
    assert (blocked_event.blocker_user_id, blocked_event.blocked_user_id) == (alice.user_id, bob.user_id)
    assert blocked_event.match_id


async def test_a_report_keeps_the_messages_as_evidence(mesh: Mesh, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    await send(channel_a, bob, conversation_id, "something abusive")
    report = await stub(channel_a).ReportConversation(
        messaging_pb2.ReportConversationRequest(conversation_id=conversation_id, reason="abuse"),
        metadata=alice.metadata,
    )
    pool = await asyncpg.create_pool(mesh.config.database_url, min_size=1, max_size=1)
    try:
        row = await pool.fetchrow("SELECT * FROM messaging.reports WHERE report_id = $1", report.report_id)
    finally:
        await pool.close()
    assert str(row["reported_id"]) == bob.user_id and row["reason"] == "abuse"
    assert [m["text"] for m in json.loads(row["evidence"])] == ["something abusive"]
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub(channel_a).ReportConversation(
            messaging_pb2.ReportConversationRequest(conversation_id=conversation_id, reason="  "),
            metadata=alice.metadata,
        )
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in empty.value.details()


async def test_notifications_for_matches_and_messages_while_offline(mesh: Mesh, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    for text in ("one", "two"):  # bob has no open stream: one notification, not two
        await send(channel_a, alice, conversation_id, text)
    api = stub(channel_a)
    listed = await api.ListNotifications(messaging_pb2.ListNotificationsRequest(), metadata=bob.metadata)
    assert [n.kind for n in listed.notifications] == [
        messaging_pb2.NOTIFICATION_KIND_NEW_MESSAGE,
        messaging_pb2.NOTIFICATION_KIND_NEW_MATCH,
    ]
    assert listed.total_unread == 2
    first = listed.notifications[0].notification_id
    marked = await api.MarkNotificationsRead(
        messaging_pb2.MarkNotificationsReadRequest(notification_ids=[first]), metadata=bob.metadata
    )
    assert marked.total_unread == 1
    unread = await api.ListNotifications(
        messaging_pb2.ListNotificationsRequest(unread_only=True), metadata=bob.metadata
    )
    assert [n.kind for n in unread.notifications] == [messaging_pb2.NOTIFICATION_KIND_NEW_MATCH]
    others = await api.ListNotifications(messaging_pb2.ListNotificationsRequest(), metadata=alice.metadata)
    assert [n.kind for n in others.notifications] == [messaging_pb2.NOTIFICATION_KIND_NEW_MATCH]


async def test_system_notices_take_a_service_token(mesh: Mesh, channel_a) -> None:
    _alice, bob, _conversation_id = await matched_pair(mesh, channel_a)
    internal = messaging_pb2_grpc.MessagingInternalServiceStub(channel_a)
    notice = messaging_pb2.PostNoticeRequest(user_ids=[bob.user_id], title="Maintenance", body="Sunday 2-3 am UTC")
    with pytest.raises(grpc.aio.AioRpcError) as users_may_not:
        await internal.PostNotice(notice, metadata=bob.metadata)
    assert users_may_not.value.code() == grpc.StatusCode.PERMISSION_DENIED
    service = ServiceTokenIssuer.from_dir(mesh.config.data_dir / "service-keys", "messaging")
    async with reading(channel_a, bob) as stream:
        posted = await internal.PostNotice(notice, metadata=(("authorization", f"Bearer {service.token()}"),))
        assert posted.notified == 1
        await stream.wait(lambda r: r.of("notification"), "the notice on the stream")
    assert stream.of("notification")[0].kind == messaging_pb2.NOTIFICATION_KIND_SYSTEM
    listed = await stub(channel_a).ListNotifications(messaging_pb2.ListNotificationsRequest(), metadata=bob.metadata)
    assert (listed.notifications[0].title, listed.notifications[0].body) == ("Maintenance", "Sunday 2-3 am UTC")


async def test_opted_in_users_get_one_digest_of_unread_messages(
    mesh: Mesh, rest, channel_a, second_replica: str, second_replica_metrics: int
) -> None:
    """The second replica runs the digest loop every DIGEST_INTERVAL / 4 s (the mesh's own
    replica mails hourly). The messages are acknowledged before bob opts in, so no round can
    fall between two sends: the digest covers every unread message, older than the opt-in too."""
    alice, bob, conversation_id = await matched_pair(mesh, channel_a, rest)
    address = f"digest-{bob.user_id}@example.com"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub(channel_a).SetEmailDigest(
            messaging_pb2.SetEmailDigestRequest(enabled=True, email="nope"), metadata=bob.metadata
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for text in ("first", "second", "third"):
        await send(channel_a, alice, conversation_id, text)
    await stub(channel_a).SetEmailDigest(
        messaging_pb2.SetEmailDigestRequest(enabled=True, email=address), metadata=bob.metadata
    )

    def digests() -> list:
        box = mailbox.Maildir(mesh.maildir, create=False)
        return sorted((m for m in box if m["To"] == address), key=lambda m: parsedate_to_datetime(m["Date"]))

    def rounds() -> Awaitable[float]:
        return scrape(second_replica_metrics, "openhr_digest_rounds_total", outcome="ok")

    (digest,) = await eventually(digests, message="the digest mail", within=WAIT)
    assert digest["Subject"] == "You have 3 unread messages on OpenHR"
    assert "Alice: 3 unread" in digest.get_payload()

    # Six more rounds (a round every DIGEST_INTERVAL / 4 s: over an interval) send nothing
    # more: the same messages are never mailed twice.
    after = await rounds()
    await eventually(lambda: _at_least(rounds(), after + 6), message="digest rounds after the mail", within=WAIT)
    assert len(digests()) == 1

    # A new message brings the next digest, with the unread count as it is then.
    await send(channel_a, alice, conversation_id, "fourth")
    _, second = await eventually(lambda: len(digests()) == 2 and digests(), message="the next digest", within=WAIT)
    assert second["Subject"] == "You have 4 unread messages on OpenHR"


async def _at_least(value: Awaitable[float], bound: float) -> bool:
    return await value >= bound


async def test_export_and_delete_leave_a_deleted_user_behind(mesh: Mesh, rest, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a, rest)
    await send(channel_a, alice, conversation_id, "my words")
    await eventually(lambda: _named(channel_a, bob, alice.user_id, "Alice"), message="alice's name", within=WAIT)
    privacy = user_data_pb2_grpc.UserDataServiceStub(channel_a)
    # Identity asks, with its service token, when a user exports or deletes their data; no user
    # token opens it, not even the user's own.
    identity = (
        ("authorization", f"Bearer {ServiceTokenIssuer.from_dir(mesh.config.service_keys, 'identity').token()}"),
    )
    exported = await privacy.ExportUserData(
        user_data_pb2.ExportUserDataRequest(user_id=alice.user_id), metadata=identity
    )
    assert exported.service == "messaging"
    assert [m["text"] for m in exported.data["messagesSent"]] == ["my words"]

    async def notified() -> list[dict]:
        """Bob's exported new-message notifications, as ListNotifications answers them."""
        request = user_data_pb2.ExportUserDataRequest(user_id=bob.user_id)
        notes = json_format.MessageToDict((await privacy.ExportUserData(request, metadata=identity)).data)
        return [n for n in notes["notifications"] if n["kind"] == "NOTIFICATION_KIND_NEW_MESSAGE"]

    (note,) = await eventually(notified, message="bob's notification", within=WAIT)
    # proto3 JSON leaves the default `read: false` out, as the REST answers do.
    assert note["notificationId"] and note["createTime"].endswith("Z") and "read" not in note
    for user in (bob, alice):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await privacy.DeleteUserData(
                user_data_pb2.DeleteUserDataRequest(user_id=alice.user_id), metadata=user.metadata
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    deleted = await privacy.DeleteUserData(
        user_data_pb2.DeleteUserDataRequest(user_id=alice.user_id), metadata=identity
    )
    assert deleted.deleted["messages_redacted"] == 1
    (conversation,) = await conversations(channel_a, bob)
    other = next(p for p in conversation.participants if p.user_id == alice.user_id)
    assert (other.display_name, other.deleted) == ("deleted user", True)
    assert conversation.last_message.text == ""
    again = await privacy.DeleteUserData(user_data_pb2.DeleteUserDataRequest(user_id=alice.user_id), metadata=identity)
    assert again.deleted["messages_redacted"] == 0


async def test_nobody_can_send_to_a_deleted_account(mesh: Mesh, rest, db, channel_a, channel_b) -> None:
    """DELETE /v1/me: identity has messaging erase the user's data (DeleteUserData marks them
    deleted) before it refuses their tokens; from then on no replica takes a message to them."""
    alice, bob, conversation_id = await matched_pair(mesh, channel_a, rest)
    await send(channel_a, alice, conversation_id, "still there?")
    deleted = await rest.delete("/v1/me", headers=bob.headers)
    assert deleted.status_code == 200, deleted.text
    for channel in (channel_a, channel_b):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await send(channel, alice, conversation_id, "hello?")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.details().startswith("the other participant's account is deleted")
        assert error_reason(refused.value) == "ERROR_REASON_FAILED_PRECONDITION"
    stored = await db.fetch("SELECT text FROM messaging.messages WHERE conversation_id = $1", conversation_id)
    assert [r["text"] for r in stored] == ["still there?"]
    assert await db.fetchval("SELECT count(*) FROM messaging.notifications WHERE user_id = $1", bob.user_id) == 0
    (conversation,) = await conversations(channel_a, alice)
    assert (conversation.last_message.seq, conversation.unread_count) == (1, 0)


async def _named(channel, viewer, user_id: str, name: str) -> bool:
    found = await conversations(channel, viewer)
    return bool(found) and any(p.user_id == user_id and p.display_name == name for p in found[0].participants)
