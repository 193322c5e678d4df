"""Putting events on users' StreamEvents, inside the transaction of the change.

Durable events (messages, receipts, matches, notifications, blocks) get the user's next
cursor and a row in their event log, which replays them on reconnect; every event, durable
or not (typing, presence), also goes through the outbox to the `messaging.live` Redis stream
that each replica fans out to its open streams. Postgres is the truth; Redis only speeds
delivery."""

from __future__ import annotations

import structlog
from google.protobuf import timestamp_pb2

from openhr.events.v1 import events_pb2
from openhr.messaging.v1 import messaging_pb2
from services.common.db import Tx
from services.common.outbox import add_event, new_event
from services.messaging import store

SERVICE = "messaging"
# Domain events other services consume (ConversationOpened, MessageSent, ConversationBlocked).
DOMAIN_TOPIC = "messaging"
# Per-user stream events, read by every messaging replica.
LIVE_TOPIC = "messaging.live"


def _request_id() -> str:
    return structlog.contextvars.get_contextvars().get("request_id", "")


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


async def deliver(tx: Tx, events: dict[str, messaging_pb2.StreamEventsResponse], *, durable: bool = True) -> None:
    """Queues one event per user (user id -> event). Users are taken in id order, so that
    transactions lock their event logs in one order and never deadlock."""
    for user_id in sorted(events):
        response = events[user_id]
        response.event_time.CopyFrom(now())
        if durable:
            seq = await store.next_stream_seq(tx, user_id)
            response.cursor = str(seq)
            await store.insert_stream_event(tx, user_id, seq, response.SerializeToString())
        event = new_event(SERVICE, user_id, _request_id())
        event.stream_delivery.event.CopyFrom(response)
        await add_event(tx, store.SCHEMA, LIVE_TOPIC, event)


async def publish(tx: Tx, about_user_id: str, event: events_pb2.Event) -> None:
    """A domain event on the `messaging` topic (the envelope's id, time and producer are set here)."""
    envelope = new_event(SERVICE, about_user_id, _request_id())
    envelope.MergeFrom(event)
    await add_event(tx, store.SCHEMA, DOMAIN_TOPIC, envelope)
