"""SQL for the messaging schema. Every call runs inside a transaction opened by
`Database.transaction(user_id)`, so row-level security decides what each query sees: a
conversation, its members and messages only for its participants, a user's event log and
notifications only for that user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from asyncpg import Record
from google.protobuf import timestamp_pb2

from openhr.messaging.v1 import messaging_pb2
from services.common.db import Tx, rows_affected
from services.messaging.rules import DELETED_USER

SCHEMA = "messaging"


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


# --- people (ProfileChanged) -------------------------------------------------------------


async def upsert_person(
    tx: Tx, *, user_id: str, profile_id: str, display_name: str, avatar_url: str, version: int
) -> None:
    """Keeps the newest profile version only (events may arrive twice or out of order)."""
    await tx.execute(
        """
        INSERT INTO messaging.people (user_id, profile_id, display_name, avatar_url, profile_version)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id) DO UPDATE SET profile_id = excluded.profile_id, display_name = excluded.display_name,
          avatar_url = excluded.avatar_url, profile_version = excluded.profile_version
        WHERE people.profile_version < excluded.profile_version AND NOT people.deleted
        """,
        user_id,
        profile_id or None,
        display_name,
        avatar_url,
        version,
    )


# --- conversations -------------------------------------------------------------------------

_CONVERSATIONS = """
SELECT c.conversation_id, c.match_id, c.last_seq, c.last_activity_at, c.blocked_by, c.created_at,
       me.read_seq AS my_read_seq,
       (SELECT json_agg(json_build_object(
                 'user_id', m.user_id, 'read_seq', m.read_seq, 'profile_id', p.profile_id,
                 'display_name', p.display_name, 'avatar_url', p.avatar_url, 'deleted', coalesce(p.deleted, false))
               ORDER BY m.user_id)
        FROM messaging.members m LEFT JOIN messaging.people p ON p.user_id = m.user_id
        WHERE m.conversation_id = c.conversation_id) AS participants,
       lm.message_id AS lm_message_id, lm.sender_id AS lm_sender_id, lm.client_message_id AS lm_client_message_id,
       lm.text AS lm_text, lm.seq AS lm_seq, lm.created_at AS lm_created_at, lm.redacted AS lm_redacted
FROM messaging.conversations c
JOIN messaging.members me ON me.conversation_id = c.conversation_id AND me.user_id = $1
LEFT JOIN messaging.messages lm ON lm.conversation_id = c.conversation_id AND lm.seq = c.last_seq
"""


def _participant(data: dict) -> messaging_pb2.Participant:
    deleted = bool(data["deleted"])
    return messaging_pb2.Participant(
        user_id=data["user_id"],
        profile_id=(data["profile_id"] or "") if not deleted else "",
        display_name=DELETED_USER if deleted else (data["display_name"] or ""),
        avatar_url="" if deleted else (data["avatar_url"] or ""),
        last_read_seq=data["read_seq"],
        deleted=deleted,
    )


def message_from_row(row: Record, conversation_id: str, prefix: str = "") -> messaging_pb2.Message:
    return messaging_pb2.Message(
        message_id=str(row[f"{prefix}message_id"]),
        conversation_id=conversation_id,
        sender_user_id=str(row[f"{prefix}sender_id"]),
        client_message_id=str(row[f"{prefix}client_message_id"]),
        text=row[f"{prefix}text"],
        seq=row[f"{prefix}seq"],
        send_time=timestamp(row[f"{prefix}created_at"]),
    )


def _conversation(row: Record) -> messaging_pb2.Conversation:
    conversation_id = str(row["conversation_id"])
    conversation = messaging_pb2.Conversation(
        conversation_id=conversation_id,
        match_id=str(row["match_id"]),
        participants=[_participant(p) for p in row["participants"] or ()],
        unread_count=max(0, row["last_seq"] - row["my_read_seq"]),
        create_time=timestamp(row["created_at"]),
        last_message_time=timestamp(row["last_activity_at"]),
        blocked=row["blocked_by"] is not None,
    )
    if row["lm_message_id"] is not None:
        conversation.last_message.CopyFrom(message_from_row(row, conversation_id, "lm_"))
    return conversation


async def get_conversation(tx: Tx, caller: str, conversation_id: str) -> messaging_pb2.Conversation | None:
    row = await tx.fetchrow(_CONVERSATIONS + "WHERE c.conversation_id = $2", caller, conversation_id)
    return _conversation(row) if row else None


async def list_conversations(
    tx: Tx, caller: str, limit: int, after: tuple[datetime, str] | None
) -> list[messaging_pb2.Conversation]:
    """By last activity, newest first; `after` is the (activity, id) of the previous page's last."""
    where = "WHERE c.user_ids @> ARRAY[$1::uuid]"
    args: list = [caller, limit]
    if after is not None:
        where += " AND (c.last_activity_at, c.conversation_id) < ($3, $4)"
        args += [after[0], after[1]]
    rows = await tx.fetch(
        _CONVERSATIONS + where + " ORDER BY c.last_activity_at DESC, c.conversation_id DESC LIMIT $2", *args
    )
    return [_conversation(row) for row in rows]


async def total_unread(tx: Tx, caller: str) -> int:
    total = await tx.fetchval(
        """
        SELECT coalesce(sum(greatest(c.last_seq - m.read_seq, 0)), 0)
        FROM messaging.members m JOIN messaging.conversations c USING (conversation_id)
        WHERE m.user_id = $1
        """,
        caller,
    )
    return int(total)


async def activity_key(tx: Tx, conversation_id: str) -> tuple[datetime, str]:
    when = await tx.fetchval(
        "SELECT last_activity_at FROM messaging.conversations WHERE conversation_id = $1", conversation_id
    )
    return when, conversation_id


async def insert_conversation(tx: Tx, match_id: str, user_ids: list[str]) -> str | None:
    """The new conversation's id; None when the match has one already."""
    conversation_id = await tx.fetchval(
        """
        INSERT INTO messaging.conversations (match_id, user_ids) VALUES ($1, $2::uuid[])
        ON CONFLICT (match_id) DO NOTHING RETURNING conversation_id
        """,
        match_id,
        user_ids,
    )
    if conversation_id is None:
        return None
    await tx.executemany(
        "INSERT INTO messaging.members (conversation_id, user_id) VALUES ($1, $2)",
        [(conversation_id, user_id) for user_id in user_ids],
    )
    return str(conversation_id)


async def conversation_of_match(tx: Tx, match_id: str) -> str | None:
    found = await tx.fetchval("SELECT conversation_id FROM messaging.conversations WHERE match_id = $1", match_id)
    return str(found) if found else None


@dataclass(frozen=True)
class Locked:
    """A conversation's counter, participants (in id order) and block."""

    conversation_id: str
    match_id: str
    last_seq: int
    user_ids: list[str]
    blocked_by: str | None


async def find_conversation(tx: Tx, conversation_id: str, *, lock: bool = False) -> Locked | None:
    """A conversation the caller takes part in (None: absent or not theirs), locked for a
    change when `lock` (until commit)."""
    row = await tx.fetchrow(
        "SELECT match_id, last_seq, user_ids, blocked_by FROM messaging.conversations "
        "WHERE conversation_id = $1" + (" FOR UPDATE" if lock else ""),
        conversation_id,
    )
    if row is None:
        return None
    return Locked(
        conversation_id,
        str(row["match_id"]),
        row["last_seq"],
        sorted(str(u) for u in row["user_ids"]),
        str(row["blocked_by"]) if row["blocked_by"] else None,
    )


async def deleted_among(tx: Tx, user_ids: list[str]) -> list[str]:
    """Those of `user_ids` who deleted their account (UserDataService.DeleteUserData)."""
    rows = await tx.fetch(
        "SELECT user_id FROM messaging.people WHERE user_id = ANY($1::uuid[]) AND deleted", user_ids
    )
    return [str(r["user_id"]) for r in rows]


async def next_seq(tx: Tx, conversation_id: str) -> int:
    """The next message seq; the conversation row is locked until commit, so seqs have no gaps."""
    return await tx.fetchval(
        "UPDATE messaging.conversations SET last_seq = last_seq + 1, last_activity_at = now() "
        "WHERE conversation_id = $1 RETURNING last_seq",
        conversation_id,
    )


async def block(tx: Tx, conversation_id: str, blocker: str) -> None:
    await tx.execute(
        "UPDATE messaging.conversations SET blocked_by = $2 WHERE conversation_id = $1 AND blocked_by IS NULL",
        conversation_id,
        blocker,
    )


# --- messages ------------------------------------------------------------------------------

_MESSAGE_COLUMNS = "message_id, sender_id, client_message_id, text, seq, created_at, redacted, conversation_id"


async def message_by_client_id(tx: Tx, sender: str, client_message_id: str) -> Record | None:
    return await tx.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM messaging.messages WHERE sender_id = $1 AND client_message_id = $2",
        sender,
        client_message_id,
    )


async def insert_message(
    tx: Tx, conversation_id: str, seq: int, sender: str, client_message_id: str, text: str
) -> messaging_pb2.Message:
    row = await tx.fetchrow(
        "INSERT INTO messaging.messages (conversation_id, seq, sender_id, client_message_id, text) "
        f"VALUES ($1, $2, $3, $4, $5) RETURNING {_MESSAGE_COLUMNS}",
        conversation_id,
        seq,
        sender,
        client_message_id,
        text,
    )
    return message_from_row(row, conversation_id)


async def list_messages(
    tx: Tx, conversation_id: str, *, limit: int, before: int | None = None, after: int | None = None
) -> list[messaging_pb2.Message]:
    """Newest first below `before`, or oldest first above `after`."""
    if after is not None:
        rows = await tx.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messaging.messages WHERE conversation_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            conversation_id,
            after,
            limit,
        )
    else:
        rows = await tx.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messaging.messages WHERE conversation_id = $1 AND seq < $2 "
            "ORDER BY seq DESC LIMIT $3",
            conversation_id,
            before if before is not None else 2**62,
            limit,
        )
    return [message_from_row(row, conversation_id) for row in rows]


async def advance_read(tx: Tx, conversation_id: str, user_id: str, seq: int) -> int:
    """Moves the member's read cursor forward to `seq` (never back); the cursor after."""
    return await tx.fetchval(
        "UPDATE messaging.members SET read_seq = greatest(read_seq, $3) "
        "WHERE conversation_id = $1 AND user_id = $2 RETURNING read_seq",
        conversation_id,
        user_id,
        seq,
    )


async def read_seqs(tx: Tx, conversation_id: str) -> dict[str, int]:
    rows = await tx.fetch(
        "SELECT user_id, read_seq FROM messaging.members WHERE conversation_id = $1", conversation_id
    )
    return {str(r["user_id"]): r["read_seq"] for r in rows}


async def evidence(tx: Tx, conversation_id: str) -> list[dict]:
    rows = await tx.fetch(
        "SELECT seq, sender_id, text, created_at FROM messaging.messages WHERE conversation_id = $1 ORDER BY seq",
        conversation_id,
    )
    return [
        {"seq": r["seq"], "sender_user_id": str(r["sender_id"]), "text": r["text"], "time": r["created_at"].isoformat()}
        for r in rows
    ]


async def insert_report(tx: Tx, conversation_id: str, reporter: str, reported: str, reason: str, proof: list) -> str:
    report_id = await tx.fetchval(
        "INSERT INTO messaging.reports (conversation_id, reporter_id, reported_id, reason, evidence) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING report_id",
        conversation_id,
        reporter,
        reported,
        reason,
        proof,
    )
    return str(report_id)


# --- per-user event logs -------------------------------------------------------------------


async def next_stream_seq(tx: Tx, user_id: str) -> int:
    """The user's next event seq; their streams row stays locked until commit."""
    return await tx.fetchval(
        """
        INSERT INTO messaging.streams (user_id, last_seq) VALUES ($1, 1)
        ON CONFLICT (user_id) DO UPDATE SET last_seq = streams.last_seq + 1
        RETURNING last_seq
        """,
        user_id,
    )


async def insert_stream_event(tx: Tx, user_id: str, seq: int, payload: bytes) -> None:
    await tx.execute(
        "INSERT INTO messaging.stream_events (user_id, seq, payload) VALUES ($1, $2, $3)", user_id, seq, payload
    )


async def stream_head(tx: Tx, user_id: str) -> tuple[int, int]:
    """(last_seq, trimmed_seq) of the user's event log."""
    row = await tx.fetchrow("SELECT last_seq, trimmed_seq FROM messaging.streams WHERE user_id = $1", user_id)
    return (row["last_seq"], row["trimmed_seq"]) if row else (0, 0)


async def trim_stream(tx: Tx, user_id: str, keep: int) -> None:
    """Drops all but the newest `keep` events of the user (cursors before them resync)."""
    cut = await tx.fetchval(
        "UPDATE messaging.streams SET trimmed_seq = last_seq - $2 WHERE user_id = $1 AND last_seq - trimmed_seq > $2 "
        "RETURNING trimmed_seq",
        user_id,
        keep,
    )
    if cut is not None:
        await tx.execute("DELETE FROM messaging.stream_events WHERE user_id = $1 AND seq <= $2", user_id, cut)


async def stream_events_after(tx: Tx, user_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
    rows = await tx.fetch(
        "SELECT seq, payload FROM messaging.stream_events WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        user_id,
        after,
        limit,
    )
    return [(r["seq"], r["payload"]) for r in rows]


async def partners(tx: Tx, user_id: str) -> list[str]:
    """Everyone the user has a conversation with."""
    rows = await tx.fetch(
        "SELECT DISTINCT u FROM messaging.conversations c, unnest(c.user_ids) u "
        "WHERE c.user_ids @> ARRAY[$1::uuid] AND u <> $1",
        user_id,
    )
    return sorted(str(r["u"]) for r in rows)


# --- notifications -------------------------------------------------------------------------

_NOTIFICATION_COLUMNS = "notification_id, kind, title, body, conversation_id, read_at, created_at"


def _notification(row: Record) -> messaging_pb2.Notification:
    return messaging_pb2.Notification(
        notification_id=str(row["notification_id"]),
        kind=messaging_pb2.NotificationKind.Value(row["kind"]),
        title=row["title"],
        body=row["body"],
        conversation_id=str(row["conversation_id"] or ""),
        read=row["read_at"] is not None,
        create_time=timestamp(row["created_at"]),
    )


async def insert_notification(
    tx: Tx, user_id: str, kind: int, title: str, body: str, conversation_id: str | None
) -> messaging_pb2.Notification | None:
    """None when an unread new-message notification of that conversation exists already.
    Written without RETURNING: the writer may be the other participant, who cannot read it."""
    notification_id, created = uuid.uuid4(), datetime.now(UTC)
    status = await tx.execute(
        """
        INSERT INTO messaging.notifications (notification_id, user_id, kind, title, body, conversation_id, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (user_id, conversation_id) WHERE kind = 'NOTIFICATION_KIND_NEW_MESSAGE' AND read_at IS NULL
        DO NOTHING
        """,
        notification_id,
        user_id,
        messaging_pb2.NotificationKind.Name(kind),
        title,
        body,
        conversation_id,
        created,
    )
    if rows_affected(status) == 0:
        return None
    return messaging_pb2.Notification(
        notification_id=str(notification_id),
        kind=kind,
        title=title,
        body=body,
        conversation_id=conversation_id or "",
        create_time=timestamp(created),
    )


async def list_notifications(
    tx: Tx, user_id: str, limit: int, unread_only: bool, before: tuple[datetime, str] | None
) -> list[messaging_pb2.Notification]:
    where = "WHERE user_id = $1" + (" AND read_at IS NULL" if unread_only else "")
    args: list = [user_id, limit]
    if before is not None:
        where += " AND (created_at, notification_id) < ($3, $4)"
        args += [before[0], before[1]]
    rows = await tx.fetch(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM messaging.notifications {where} "
        "ORDER BY created_at DESC, notification_id DESC LIMIT $2",
        *args,
    )
    return [_notification(r) for r in rows]


async def notification_key(tx: Tx, notification_id: str) -> tuple[datetime, str]:
    when = await tx.fetchval(
        "SELECT created_at FROM messaging.notifications WHERE notification_id = $1", notification_id
    )
    return when, notification_id


async def mark_notifications_read(tx: Tx, user_id: str, ids: list[str]) -> None:
    if ids:
        await tx.execute(
            "UPDATE messaging.notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL "
            "AND notification_id = ANY($2::uuid[])",
            user_id,
            ids,
        )
    else:
        await tx.execute(
            "UPDATE messaging.notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user_id
        )


async def unread_notifications(tx: Tx, user_id: str) -> int:
    return await tx.fetchval(
        "SELECT count(*) FROM messaging.notifications WHERE user_id = $1 AND read_at IS NULL", user_id
    )


# --- email digests -------------------------------------------------------------------------


async def set_digest(tx: Tx, user_id: str, email: str | None) -> None:
    """Opts in with `email`, or out with None (the address is forgotten)."""
    if email is None:
        await tx.execute("DELETE FROM messaging.digests WHERE user_id = $1", user_id)
        return
    await tx.execute(
        "INSERT INTO messaging.digests (user_id, email) VALUES ($1, $2) "
        "ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, enabled = true",
        user_id,
        email,
    )


async def digest_subscribers(tx: Tx) -> list[str]:
    """Users opted in to the digest (read without a caller, by the digest loop only)."""
    rows = await tx.fetch("SELECT user_id FROM messaging.digests WHERE enabled")
    return [str(r["user_id"]) for r in rows]


async def due_digest(tx: Tx, user_id: str, interval_seconds: float) -> tuple[str, list[Record]] | None:
    """The address and unread conversations of a user whose last digest is older than the
    interval and who has unread messages newer than it; None when nothing is due."""
    email = await tx.fetchval(
        "SELECT email FROM messaging.digests WHERE user_id = $1 AND enabled "
        "AND (last_sent_at IS NULL OR last_sent_at < now() - make_interval(secs => $2)) FOR UPDATE SKIP LOCKED",
        user_id,
        interval_seconds,
    )
    if email is None:
        return None
    rows = await tx.fetch(
        """
        SELECT c.conversation_id, c.last_seq - m.read_seq AS unread,
               (SELECT coalesce(p.display_name, '') FROM messaging.people p
                WHERE p.user_id = (SELECT u FROM unnest(c.user_ids) u WHERE u <> $1 LIMIT 1) AND NOT p.deleted) AS other
        FROM messaging.members m JOIN messaging.conversations c USING (conversation_id)
        WHERE m.user_id = $1 AND c.last_seq > m.read_seq
          AND c.last_activity_at >
              coalesce((SELECT last_sent_at FROM messaging.digests WHERE user_id = $1), '-infinity')
        ORDER BY c.last_activity_at DESC
        """,
        user_id,
    )
    return (email, rows) if rows else None


async def digest_sent(tx: Tx, user_id: str) -> None:
    await tx.execute("UPDATE messaging.digests SET last_sent_at = now() WHERE user_id = $1", user_id)


# --- privacy -------------------------------------------------------------------------------


async def export_user(tx: Tx, user_id: str) -> dict:
    """The sections as stored (services/common/json_mapping.py maps them to JSON)."""
    conversations = await tx.fetch(
        "SELECT conversation_id, match_id, created_at AS create_time FROM messaging.conversations"
        " WHERE user_ids @> ARRAY[$1::uuid]",
        user_id,
    )
    messages = await tx.fetch(
        "SELECT conversation_id, seq, text, created_at AS create_time FROM messaging.messages"
        " WHERE sender_id = $1 AND NOT redacted ORDER BY conversation_id, seq",
        user_id,
    )
    notifications = await tx.fetch(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM messaging.notifications WHERE user_id = $1 ORDER BY created_at", user_id
    )
    digest = await tx.fetchrow("SELECT email, enabled FROM messaging.digests WHERE user_id = $1", user_id)
    reports = await tx.fetch(
        "SELECT conversation_id, reason, created_at AS create_time FROM messaging.reports WHERE reporter_id = $1",
        user_id,
    )
    return {
        "conversations": [dict(r) for r in conversations],
        "messages_sent": [dict(r) for r in messages],
        "notifications": [_notification(r) for r in notifications],  # as ListNotifications answers them
        "email_digest": dict(digest) if digest else None,
        "reports_filed": [dict(r) for r in reports],
    }


async def delete_user(tx: Tx, user_id: str) -> dict[str, int]:
    """Erases the user's texts, name, notifications, digest address and event log; their
    conversations stay for the other side, who sees a "deleted user".
    The user's conversations are locked first: a send under way commits before (and its text
    is redacted here), a later one finds the user deleted and is refused."""
    await tx.execute(
        "SELECT 1 FROM messaging.conversations WHERE user_ids @> ARRAY[$1::uuid] ORDER BY conversation_id FOR UPDATE",
        user_id,
    )
    redacted = await tx.execute(
        "UPDATE messaging.messages SET text = '', redacted = true WHERE sender_id = $1 AND NOT redacted", user_id
    )
    await tx.execute(
        """
        INSERT INTO messaging.people (user_id, deleted) VALUES ($1, true)
        ON CONFLICT (user_id) DO UPDATE SET deleted = true, display_name = '', avatar_url = '', profile_id = NULL
        """,
        user_id,
    )
    notifications = await tx.execute("DELETE FROM messaging.notifications WHERE user_id = $1", user_id)
    digests = await tx.execute("DELETE FROM messaging.digests WHERE user_id = $1", user_id)
    events = await tx.execute("DELETE FROM messaging.stream_events WHERE user_id = $1", user_id)
    return {
        "messages_redacted": rows_affected(redacted),
        "notifications": rows_affected(notifications),
        "email_digests": rows_affected(digests),
        "stream_events": rows_affected(events),
    }
