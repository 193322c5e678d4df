"""The messaging service's gRPC servicers: thin translation between protos and the domain
modules (chat, stream, typing, presence) and the store."""

from __future__ import annotations

from datetime import datetime

from openhr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from services.common import errors
from services.common.auth import current_principal
from services.common.db import Database
from services.messaging import chat, rules, store
from services.messaging.presence import AWAY, ONLINE, Presence
from services.messaging.stream import EventStreams
from services.messaging.typing import Typing


def _caller() -> str:
    return current_principal().user_id


def _key_token(key: tuple[datetime, str]) -> str:
    return rules.encode_token({"t": key[0].isoformat(), "id": key[1]})


def _key_from_token(token: str) -> tuple[datetime, str] | None:
    data = rules.decode_token(token, ("t", "id"))
    if data is None:
        return None
    try:
        return datetime.fromisoformat(data["t"]), rules.parse_uuid(data["id"], "page_token")
    except (TypeError, ValueError):
        raise errors.invalid_field("page_token", "is not a token this service returned") from None


def _messages_page(request: messaging_pb2.ListMessagesRequest) -> tuple[int | None, int | None]:
    """(before, after) from before_seq / after_seq or a page token; one direction at a time."""
    before = request.before_seq if request.HasField("before_seq") else None
    after = request.after_seq if request.HasField("after_seq") else None
    for name, value in (("before_seq", before), ("after_seq", after)):
        if value is not None and value < 0:
            raise errors.invalid_field(name, "must not be negative")
    if before is not None and after is not None:
        raise errors.invalid_field("after_seq", "give before_seq or after_seq, not both")
    token = rules.decode_token(request.page_token, ("before", "after"))
    if token is None:
        return before, after
    if before is not None or after is not None:
        raise errors.invalid_field("page_token", "replaces before_seq and after_seq; send it alone")
    before, after = token["before"], token["after"]
    if not all(v is None or (isinstance(v, int) and v >= 0) for v in (before, after)) or (before is None) == (
        after is None
    ):
        raise errors.invalid_field("page_token", "is not a token this service returned")
    return before, after


class MessagingApi(messaging_pb2_grpc.MessagingServiceServicer):
    def __init__(self, db: Database, streams: EventStreams, typing: Typing, presence: Presence) -> None:
        self._db, self._streams, self._typing, self._presence = db, streams, typing, presence

    async def ListConversations(self, request, context):
        caller = _caller()
        limit = rules.page_size(request.page_size, rules.MAX_CONVERSATIONS_PAGE)
        after = _key_from_token(request.page_token)
        async with self._db.transaction(caller) as tx:
            conversations = await store.list_conversations(tx, caller, limit + 1, after)
            total = await store.total_unread(tx, caller)
            more = len(conversations) > limit
            conversations = conversations[:limit]
            for conversation in conversations:
                conversation.suggested_openers.extend(rules.suggested_openers(conversation, caller))
            next_token = (
                _key_token(await store.activity_key(tx, conversations[-1].conversation_id)) if more else ""
            )
        return messaging_pb2.ListConversationsResponse(
            conversations=conversations, next_page_token=next_token, total_unread=total
        )

    async def ListMessages(self, request, context):
        caller = _caller()
        conversation_id = rules.parse_uuid(request.conversation_id, "conversation_id")
        limit = rules.page_size(request.page_size, rules.MAX_MESSAGES_PAGE)
        before, after = _messages_page(request)
        async with self._db.transaction(caller) as tx:
            if await store.find_conversation(tx, conversation_id) is None:
                raise errors.not_found("conversation")
            messages = await store.list_messages(tx, conversation_id, limit=limit + 1, before=before, after=after)
        more = len(messages) > limit
        messages = messages[:limit]
        next_token = ""
        if more:
            last = messages[-1].seq
            next_token = rules.encode_token(
                {"before": None, "after": last} if after is not None else {"before": last, "after": None}
            )
        return messaging_pb2.ListMessagesResponse(messages=messages, next_page_token=next_token)

    async def SendMessage(self, request, context):
        caller = _caller()
        conversation_id = rules.parse_uuid(request.conversation_id, "conversation_id")
        client_message_id = rules.parse_uuid(request.client_message_id, "client_message_id")
        text = rules.validate_text(request.text)
        message = await chat.send_message(
            self._db, caller, conversation_id, client_message_id, text, self._presence.is_connected
        )
        return messaging_pb2.SendMessageResponse(message=message)

    async def MarkRead(self, request, context):
        conversation_id = rules.parse_uuid(request.conversation_id, "conversation_id")
        unread = await chat.mark_read(self._db, _caller(), conversation_id, request.seq)
        return messaging_pb2.MarkReadResponse(unread_count=unread)

    async def SetTyping(self, request, context):
        conversation_id = rules.parse_uuid(request.conversation_id, "conversation_id")
        await self._typing.set(_caller(), conversation_id, request.typing)
        return messaging_pb2.SetTypingResponse()

    async def StreamEvents(self, request, context):
        cursor = rules.parse_cursor(request.cursor)
        async for response in self._streams.stream(_caller(), cursor):
            yield response

    async def SetPresence(self, request, context):
        if request.state not in (ONLINE, AWAY):
            raise errors.invalid_field("state", "must be PRESENCE_STATE_ONLINE or PRESENCE_STATE_AWAY")
        await self._presence.set_away(_caller(), request.state == AWAY)
        return messaging_pb2.SetPresenceResponse()

    async def BlockConversation(self, request, context):
        conversation_id = rules.parse_uuid(request.conversation_id, "conversation_id")
        conversation = await chat.block(self._db, _caller(), conversation_id)
        return messaging_pb2.BlockConversationResponse(conversation=conversation)

    async def ReportConversation(self, request, context):
        conversation_id = rules.parse_uuid(request.conversation_id, "conversation_id")
        reason = rules.validate_text(request.reason, "reason", rules.MAX_REASON)
        report_id = await chat.report(self._db, _caller(), conversation_id, reason)
        return messaging_pb2.ReportConversationResponse(report_id=report_id)

    async def ListNotifications(self, request, context):
        caller = _caller()
        limit = rules.page_size(request.page_size, rules.MAX_CONVERSATIONS_PAGE)
        before = _key_from_token(request.page_token)
        async with self._db.transaction(caller) as tx:
            notes = await store.list_notifications(tx, caller, limit + 1, request.unread_only, before)
            unread = await store.unread_notifications(tx, caller)
            more = len(notes) > limit
            notes = notes[:limit]
            next_token = _key_token(await store.notification_key(tx, notes[-1].notification_id)) if more else ""
        return messaging_pb2.ListNotificationsResponse(
            notifications=notes, next_page_token=next_token, total_unread=unread
        )

    async def MarkNotificationsRead(self, request, context):
        caller = _caller()
        ids = [rules.parse_uuid(n, f"notification_ids[{i}]") for i, n in enumerate(request.notification_ids)]
        async with self._db.transaction(caller) as tx:
            await store.mark_notifications_read(tx, caller, ids)
            unread = await store.unread_notifications(tx, caller)
        return messaging_pb2.MarkNotificationsReadResponse(total_unread=unread)

    async def SetEmailDigest(self, request, context):
        caller = _caller()
        email = rules.validate_email(request.email) if request.enabled else None
        async with self._db.transaction(caller) as tx:
            await store.set_digest(tx, caller, email)
        return messaging_pb2.SetEmailDigestResponse(enabled=request.enabled)


def _require_service(method: str) -> None:
    """Users get conversations by matching and notices from the platform: these are for peer
    services and operators (a service token), not for a user's token."""
    if not current_principal().service:
        raise errors.permission_denied(f"{method} takes a service token")


class MessagingInternalApi(messaging_pb2_grpc.MessagingInternalServiceServicer):
    """For peer services and operators: open the conversation of a match (repair,
    services/messaging/repair.py), post system notices."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def OpenConversation(self, request, context):
        match_id = rules.parse_uuid(request.match_id, "match_id")
        if len(request.user_ids) != 2:
            raise errors.invalid_field("user_ids", "must name the two matched users")
        user_ids = [rules.parse_uuid(u, f"user_ids[{i}]") for i, u in enumerate(request.user_ids)]
        if user_ids[0] == user_ids[1]:
            raise errors.invalid_field("user_ids", "must name two different users")
        _require_service("OpenConversation")
        conversation = await chat.open_conversation(self._db, match_id, user_ids)
        return messaging_pb2.OpenConversationResponse(conversation=conversation)

    async def PostNotice(self, request, context):
        _require_service("PostNotice")
        if not 1 <= len(request.user_ids) <= rules.MAX_NOTICE_USERS:
            raise errors.invalid_field("user_ids", f"must name 1 to {rules.MAX_NOTICE_USERS} users")
        user_ids = sorted({rules.parse_uuid(u, f"user_ids[{i}]") for i, u in enumerate(request.user_ids)})
        title = rules.validate_text(request.title, "title", rules.MAX_NOTICE_TITLE)
        body = rules.validate_text(request.body, "body") if request.body else ""
        notified = await chat.post_notice(self._db, user_ids, title, body)
        return messaging_pb2.PostNoticeResponse(notified=notified)
