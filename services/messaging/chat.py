"""The rules of a conversation: opening one for a match, sending, read receipts, blocking and
reporting. Each is one transaction that changes the rows and queues its events (users'
streams, domain events) through the outbox, so nothing is announced that did not commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from openhr.events.v1 import events_pb2
from openhr.messaging.v1 import messaging_pb2
from services.common import errors
from services.common.consumer import first_delivery
from services.common.db import Database
from services.messaging import store
from services.messaging.deliveries import deliver, publish

Online = Callable[[str], Awaitable[bool]]


async def open_conversation(
    db: Database, match_id: str, user_ids: list[str], *, event_id: str | None = None
) -> messaging_pb2.Conversation | None:
    """The conversation of a match between two users; opened (with a new-match event and
    notification for both, and ConversationOpened) the first time, returned after that.
    With `event_id` (a MatchCreated), None when that event was handled before."""
    first, second = sorted(user_ids)
    async with db.transaction(first) as tx:
        if event_id is not None and not await first_delivery(tx, store.SCHEMA, event_id):
            return None
        conversation_id = await store.insert_conversation(tx, match_id, [first, second])
        if conversation_id is None:
            existing = await store.conversation_of_match(tx, match_id)
            if existing is None:
                raise errors.failed_precondition("this match already has a conversation between other users")
            return await store.get_conversation(tx, first, existing)
        conversation = await store.get_conversation(tx, first, conversation_id)
        names = {p.user_id: p.display_name for p in conversation.participants}
        matches, notes = {}, {}
        for user_id, other in ((first, second), (second, first)):
            matches[user_id] = messaging_pb2.StreamEventsResponse(
                new_match=messaging_pb2.NewMatchEvent(
                    match_id=match_id,
                    conversation_id=conversation_id,
                    other_user_id=other,
                    other_display_name=names.get(other, ""),
                )
            )
            note = await store.insert_notification(
                tx,
                user_id,
                messaging_pb2.NOTIFICATION_KIND_NEW_MATCH,
                "New match",
                f"You matched with {names.get(other) or 'someone'}: say hello.",
                conversation_id,
            )
            notes[user_id] = messaging_pb2.StreamEventsResponse(notification=note)
        await deliver(tx, matches)
        await deliver(tx, notes)
        await publish(
            tx, first, events_pb2.Event(conversation_opened=events_pb2.ConversationOpened(conversation=conversation))
        )
    return conversation


def _other(conversation: store.Locked, user_id: str) -> str:
    return next(u for u in conversation.user_ids if u != user_id)


async def send_message(
    db: Database, sender: str, conversation_id: str, client_message_id: str, text: str, online: Online
) -> messaging_pb2.Message:
    """Stores the message with the conversation's next seq, or returns the one stored for
    this client_message_id before (same conversation and text; anything else is an error)."""
    async with db.transaction(sender) as tx:
        # The conversation row lock orders concurrent sends (seq without gaps) and retries.
        conversation = await store.find_conversation(tx, conversation_id, lock=True)
        if conversation is None:
            raise errors.not_found("conversation")
        existing = await store.message_by_client_id(tx, sender, client_message_id)
        if existing is not None:
            if str(existing["conversation_id"]) == conversation_id and existing["text"] == text:
                return store.message_from_row(existing, conversation_id)
            raise errors.already_exists("a different message with this client_message_id")
        if conversation.blocked_by is not None:
            raise errors.failed_precondition("this conversation is blocked: no one can send to it")
        deleted = await store.deleted_among(tx, conversation.user_ids)
        if deleted:
            whose = "your" if sender in deleted else "the other participant's"
            raise errors.failed_precondition(f"{whose} account is deleted: no one can send to this conversation")
        seq = await store.next_seq(tx, conversation_id)
        try:
            message = await store.insert_message(tx, conversation_id, seq, sender, client_message_id, text)
        except asyncpg.UniqueViolationError:  # the same id sent to another conversation meanwhile
            raise errors.already_exists("a different message with this client_message_id") from None
        await store.advance_read(tx, conversation_id, sender, seq)  # one has read what one wrote
        reads = await store.read_seqs(tx, conversation_id)
        await deliver(
            tx,
            {
                user_id: messaging_pb2.StreamEventsResponse(
                    message=messaging_pb2.MessageEvent(message=message, unread_count=seq - reads.get(user_id, 0))
                )
                for user_id in conversation.user_ids
            },
        )
        recipient = _other(conversation, sender)
        await publish(
            tx,
            sender,
            events_pb2.Event(message_sent=events_pb2.MessageSent(message=message, recipient_user_ids=[recipient])),
        )
        if not await online(recipient):
            note = await store.insert_notification(
                tx,
                recipient,
                messaging_pb2.NOTIFICATION_KIND_NEW_MESSAGE,
                "New messages",
                "You have unread messages.",
                conversation_id,
            )
            if note is not None:
                await deliver(tx, {recipient: messaging_pb2.StreamEventsResponse(notification=note)})
    return message


async def mark_read(db: Database, reader: str, conversation_id: str, seq: int) -> int:
    """Moves the reader's cursor forward to `seq`; their unread count after. A receipt goes to
    both participants (the reader's other devices update their count from it)."""
    if seq < 0:
        raise errors.invalid_field("seq", "must not be negative")
    async with db.transaction(reader) as tx:
        conversation = await store.find_conversation(tx, conversation_id)
        if conversation is None:
            raise errors.not_found("conversation")
        if seq > conversation.last_seq:
            raise errors.invalid_field("seq", f"is beyond the last message ({conversation.last_seq})")
        before = (await store.read_seqs(tx, conversation_id)).get(reader, 0)
        after = await store.advance_read(tx, conversation_id, reader, seq)
        unread = max(0, conversation.last_seq - after)
        if after > before:
            receipt = messaging_pb2.ReceiptEvent(
                conversation_id=conversation_id, reader_user_id=reader, seq=after, unread_count=unread
            )
            await deliver(
                tx, {u: messaging_pb2.StreamEventsResponse(receipt=receipt) for u in conversation.user_ids}
            )
    return unread


async def block(db: Database, blocker: str, conversation_id: str) -> messaging_pb2.Conversation:
    """Closes the conversation to new messages; both streams hear it, matching through
    ConversationBlocked. Blocking twice changes nothing."""
    async with db.transaction(blocker) as tx:
        conversation = await store.find_conversation(tx, conversation_id, lock=True)
        if conversation is None:
            raise errors.not_found("conversation")
        if conversation.blocked_by is None:
            await store.block(tx, conversation_id, blocker)
            event = messaging_pb2.BlockEvent(conversation_id=conversation_id, blocker_user_id=blocker)
            await deliver(tx, {u: messaging_pb2.StreamEventsResponse(block=event) for u in conversation.user_ids})
            blocked = events_pb2.ConversationBlocked(
                conversation_id=conversation_id,
                match_id=conversation.match_id,
                blocker_user_id=blocker,
                blocked_user_id=_other(conversation, blocker),
            )
            await publish(tx, blocker, events_pb2.Event(conversation_blocked=blocked))
        return await store.get_conversation(tx, blocker, conversation_id)


async def report(db: Database, reporter: str, conversation_id: str, reason: str) -> str:
    """Files a report about the other participant with the conversation's messages attached."""
    async with db.transaction(reporter) as tx:
        conversation = await store.find_conversation(tx, conversation_id)
        if conversation is None:
            raise errors.not_found("conversation")
        evidence = await store.evidence(tx, conversation_id)
        return await store.insert_report(
            tx, conversation_id, reporter, _other(conversation, reporter), reason, evidence
        )


async def post_notice(db: Database, user_ids: list[str], title: str, body: str) -> int:
    """A system notice in each user's notifications and on their streams (one transaction each)."""
    for user_id in user_ids:
        async with db.transaction(user_id) as tx:
            kind = messaging_pb2.NOTIFICATION_KIND_SYSTEM
            note = await store.insert_notification(tx, user_id, kind, title, body, None)
            await deliver(tx, {user_id: messaging_pb2.StreamEventsResponse(notification=note)})
    return len(user_ids)
