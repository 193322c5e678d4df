"""Chat between two matched users across two messaging replicas: conversations open from
MatchCreated, messages are ordered and idempotent, streams deliver once and in order,
receipts and unread counts agree across devices."""

from __future__ import annotations

import uuid

import grpc
import pytest
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.events.v1 import events_pb2
from openhr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from services.common.service_auth import ServiceTokenIssuer
from tests.events import match_created, publish
from tests.messaging.support import WAIT, conversations, matched_pair, reading, send, stub
from tests.users import new_user
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(180)


async def test_match_opens_one_conversation_with_both_names(mesh: Mesh, rest, channel_a, channel_b) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a, rest)
    # The names come from ProfileChanged, which may be consumed after the match.
    async def named():
        found = await conversations(channel_b, alice)
        names = {p.user_id: p.display_name for p in found[0].participants} if found else {}
        return names if names == {alice.user_id: "Alice", bob.user_id: "Bob"} else None

    await eventually(named, message="the participants' names", within=WAIT)
    (conversation,) = await conversations(channel_b, alice)
    assert conversation.conversation_id == conversation_id
    assert conversation.unread_count == 0 and not conversation.HasField("last_message")

    # The same match again (redelivered, or repaired through OpenConversation): still one.
    internal = messaging_pb2_grpc.MessagingInternalServiceStub(channel_a)
    repair = messaging_pb2.OpenConversationRequest(
        match_id=conversation.match_id, user_ids=[bob.user_id, alice.user_id]
    )
    service = ServiceTokenIssuer.from_dir(mesh.config.data_dir / "service-keys", "messaging")
    repaired = await internal.OpenConversation(repair, metadata=(("authorization", f"Bearer {service.token()}"),))
    assert repaired.conversation.conversation_id == conversation_id
    with pytest.raises(grpc.aio.AioRpcError) as users_may_not:  # users match; they do not open
        await internal.OpenConversation(repair, metadata=bob.metadata)
    assert users_may_not.value.code() == grpc.StatusCode.PERMISSION_DENIED
    event = match_created(alice.user_id, bob.user_id, match_id=conversation.match_id)
    await publish(mesh, "matching", event)
    await publish(mesh, "matching", event)
    assert [c.conversation_id for c in await conversations(channel_a, alice)] == [conversation_id]

    # ConversationOpened went out through the outbox.
    redis = Redis.from_url(mesh.redis.url)
    try:
        entries = await eventually(lambda: redis.xrange("events.messaging"), message="ConversationOpened", within=WAIT)
    finally:
        await redis.aclose()
    opened = [
        e.conversation_opened.conversation
        for e in (events_pb2.Event.FromString(f[b"data"]) for _id, f in entries)
        if e.WhichOneof("payload") == "conversation_opened"
    ]
    assert [c.conversation_id for c in opened].count(conversation_id) == 1


async def test_a_match_is_announced_on_both_streams(mesh: Mesh, channel_a, channel_b) -> None:
    alice, bob = new_user(mesh, "alice"), new_user(mesh, "bob")
    async with reading(channel_a, alice) as on_a, reading(channel_b, bob) as on_b:
        await publish(mesh, "matching", match_created(alice.user_id, bob.user_id))
        await on_a.wait(lambda r: r.of("new_match") and r.of("notification"), "alice's new match")
        await on_b.wait(lambda r: r.of("new_match") and r.of("notification"), "bob's new match")
    assert on_a.of("new_match")[0].other_user_id == bob.user_id
    assert on_b.of("new_match")[0].other_user_id == alice.user_id
    assert on_b.of("notification")[0].kind == messaging_pb2.NOTIFICATION_KIND_NEW_MATCH


async def test_sent_on_one_replica_arrives_on_the_other_in_order(mesh: Mesh, channel_a, channel_b) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    async with reading(channel_b, bob) as bob_stream, reading(channel_a, alice) as alice_stream:
        sent = [await send(channel_a, alice, conversation_id, f"hello {i}") for i in range(5)]
        sent.append(await send(channel_b, bob, conversation_id, "hi back"))
        expected = [f"hello {i}" for i in range(5)] + ["hi back"]
        await bob_stream.wait(lambda r: len(r.texts) >= 6, "bob's messages")
        await alice_stream.wait(lambda r: len(r.texts) >= 6, "alice's messages")
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5, 6]
    assert bob_stream.texts == expected and alice_stream.texts == expected
    assert [m.message.seq for m in bob_stream.of("message")] == [1, 2, 3, 4, 5, 6]
    assert [m.unread_count for m in bob_stream.of("message")] == [1, 2, 3, 4, 5, 0]


async def test_reconnecting_with_a_cursor_gets_exactly_what_was_missed(mesh: Mesh, channel_a, channel_b) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    async with reading(channel_b, bob) as first:
        await send(channel_a, alice, conversation_id, "one")
        await first.wait(lambda r: r.texts == ["one"])
    cursor = first.position
    for text in ("two", "three", "four"):
        await send(channel_a, alice, conversation_id, text)
    async with reading(channel_a, bob, cursor) as again:
        await send(channel_b, alice, conversation_id, "five")
        await again.wait(lambda r: "five" in r.texts)
    assert again.texts == ["two", "three", "four", "five"]
    assert [m.message.seq for m in again.of("message")] == [2, 3, 4, 5]


async def test_retry_returns_the_original_and_a_reused_id_is_refused(mesh: Mesh, channel_a, channel_b) -> None:
    alice, _bob, conversation_id = await matched_pair(mesh, channel_a)
    client_id = str(uuid.uuid4())
    first = await send(channel_a, alice, conversation_id, "only once", client_id)
    retry = await send(channel_b, alice, conversation_id, "only once", client_id)
    assert retry == first
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await send(channel_a, alice, conversation_id, "something else", client_id)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    page = await stub(channel_a).ListMessages(
        messaging_pb2.ListMessagesRequest(conversation_id=conversation_id), metadata=alice.metadata
    )
    assert [m.text for m in page.messages] == ["only once"]


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("x" * 1000, True),
        ("😀" * 1000, True),  # code points, not bytes or UTF-16 units
        ("x" * 1001, False),
        ("😀" * 1001, False),
        ("", False),
        (" \n\t\u3000 ", False),
        ("\u200b\u0007", False),
    ],
)
async def test_text_is_1_to_1000_visible_code_points(mesh: Mesh, channel_a, text: str, accepted: bool) -> None:
    alice, _bob, conversation_id = await matched_pair(mesh, channel_a)
    if accepted:
        assert (await send(channel_a, alice, conversation_id, text)).text == text
        return
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await send(channel_a, alice, conversation_id, text)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text" in refused.value.details()


async def test_history_pages_both_ways(mesh: Mesh, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    for i in range(1, 8):
        await send(channel_a, alice if i % 2 else bob, conversation_id, f"m{i}")
    api = stub(channel_a)

    async def pages(**request) -> list[list[int]]:
        out, token = [], ""
        while True:
            page = await api.ListMessages(
                messaging_pb2.ListMessagesRequest(
                    conversation_id=conversation_id, page_size=3, page_token=token, **(request if not token else {})
                ),
                metadata=bob.metadata,
            )
            out.append([m.seq for m in page.messages])
            token = page.next_page_token
            if not token:
                return out

    assert await pages() == [[7, 6, 5], [4, 3, 2], [1]]
    assert await pages(before_seq=5) == [[4, 3, 2], [1]]
    assert await pages(after_seq=0) == [[1, 2, 3], [4, 5, 6], [7]]
    assert await pages(after_seq=4) == [[5, 6, 7]]


async def test_unread_counts_and_receipts_agree_across_two_devices(mesh: Mesh, channel_a, channel_b) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    async with reading(channel_a, bob) as phone, reading(channel_b, bob) as laptop, reading(channel_a, alice) as sender:
        for text in ("a", "b", "c"):
            await send(channel_a, alice, conversation_id, text)
        await laptop.wait(lambda r: len(r.texts) == 3)
        (conversation,) = await conversations(channel_b, bob)
        assert conversation.unread_count == 3 and conversation.last_message.text == "c"

        marked = await stub(channel_a).MarkRead(
            messaging_pb2.MarkReadRequest(conversation_id=conversation_id, seq=2), metadata=bob.metadata
        )
        assert marked.unread_count == 1
        for device in (phone, laptop):
            await device.wait(lambda r: r.of("receipt"), "the receipt on both devices")
            assert [(x.seq, x.unread_count) for x in device.of("receipt")] == [(2, 1)]
        await sender.wait(lambda r: r.of("receipt"), "the receipt at the sender")
        assert sender.of("receipt")[0].reader_user_id == bob.user_id

        # The cursor never moves back; marking the same or an older seq changes nothing.
        again = await stub(channel_b).MarkRead(
            messaging_pb2.MarkReadRequest(conversation_id=conversation_id, seq=1), metadata=bob.metadata
        )
        assert again.unread_count == 1
    listed = await stub(channel_b).ListConversations(messaging_pb2.ListConversationsRequest(), metadata=bob.metadata)
    assert listed.conversations[0].unread_count == 1 and listed.total_unread == 1
    with pytest.raises(grpc.aio.AioRpcError) as beyond:
        await stub(channel_a).MarkRead(
            messaging_pb2.MarkReadRequest(conversation_id=conversation_id, seq=9), metadata=bob.metadata
        )
    assert beyond.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_conversations_are_listed_by_last_activity(mesh: Mesh, channel_a) -> None:
    alice, bob, first = await matched_pair(mesh, channel_a)
    carol = new_user(mesh, "carol")
    await publish(mesh, "matching", match_created(alice.user_id, carol.user_id))
    await eventually(lambda: conversations(channel_a, carol), message="the second conversation", within=WAIT)
    second = (await conversations(channel_a, carol))[0].conversation_id
    await send(channel_a, bob, first, "newer")
    assert [c.conversation_id for c in await conversations(channel_a, alice)] == [first, second]
    await send(channel_a, carol, second, "newest")
    listed = await stub(channel_a).ListConversations(
        messaging_pb2.ListConversationsRequest(page_size=1), metadata=alice.metadata
    )
    assert [c.conversation_id for c in listed.conversations] == [second]
    assert listed.total_unread == 2
    rest_page = await stub(channel_a).ListConversations(
        messaging_pb2.ListConversationsRequest(page_size=1, page_token=listed.next_page_token), metadata=alice.metadata
    )
    assert [c.conversation_id for c in rest_page.conversations] == [first]
    assert rest_page.conversations[0].last_message.text == "newer"


async def test_a_new_conversation_suggests_first_messages(mesh: Mesh, rest, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a, rest)

    async def openers(user) -> list[str]:  # over REST, as the web app reads them
        response = await rest.get("/v1/conversations", headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()["conversations"][0].get("suggestedOpeners", [])

    # Names arrive by ProfileChanged: addressed by name once messaging has it.
    for user, other in ((bob, "Alice"), (alice, "Bob")):
        suggested = await eventually(
            lambda u=user, o=other: _addressed(openers(u), o), message=f"openers for {other}", within=WAIT
        )
        assert len(suggested) >= 2 and len(set(suggested)) == len(suggested)
    await send(channel_a, alice, conversation_id, "hello")
    assert await openers(bob) == [] and await openers(alice) == []
    (conversation,) = await conversations(channel_a, bob)
    assert not conversation.suggested_openers


async def _addressed(openers, name: str) -> list[str]:
    found = await openers
    return found if found and all(name in opener for opener in found) else []
