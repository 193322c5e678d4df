"""The opt-in email digest of unread messages: one mail per user and interval listing the
conversations with unread messages, never one mail per message. Sent over SMTP with
aiosmtplib, several mails per connection (locally the aiosmtpd sink of deploy/local).

Every replica runs the loop; a user's row is locked while their digest is composed and
sent (SKIP LOCKED), so two replicas never mail the same digest twice."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib
import structlog
from prometheus_client import Counter

from services.common.cancellation import raise_if_cancelled
from services.common.db import Database
from services.messaging import store

log = structlog.get_logger("digest")
SEND_TIMEOUT = 10.0
ROUNDS = Counter("openhr_digest_rounds_total", "Rounds of the digest loop, by outcome.", ["outcome"])
SENT = Counter("openhr_digests_sent_total", "Digest mails sent.")


def compose(sender: str, to: str, public_url: str, unread: list) -> EmailMessage:
    total = sum(row["unread"] for row in unread)
    lines = [f"- {row['other'] or 'someone'}: {row['unread']} unread" for row in unread]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"You have {total} unread message{'s' if total != 1 else ''} on OpenHR"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="openhr")
    body = (
        "Unread messages are waiting for you:\n\n"
        + "\n".join(lines)
        + f"\n\nRead and reply at {public_url.rstrip('/')}/messages\n\n"
        "You get this digest because you opted in; turn it off in your notification settings.\n"
    )
    message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return message


class DigestSender:
    def __init__(
        self, db: Database, *, host: str, port: int, sender: str, public_url: str, interval: float
    ) -> None:
        self._db, self._host, self._port, self._sender = db, host, port, sender
        self._public_url, self._interval = public_url, interval

    async def send_due(self) -> int:
        """Sends every digest that is due, over one SMTP connection; the number sent."""
        async with self._db.transaction(None) as tx:
            users = await store.digest_subscribers(tx)
        sent = 0
        smtp: aiosmtplib.SMTP | None = None
        try:
            for user_id in users:
                async with self._db.transaction(user_id) as tx:
                    due = await store.due_digest(tx, user_id, self._interval)
                    if due is None:
                        continue
                    email, unread = due
                    if smtp is None:
                        smtp = aiosmtplib.SMTP(hostname=self._host, port=self._port, timeout=SEND_TIMEOUT)
                        await smtp.connect()
                    await smtp.send_message(compose(self._sender, email, self._public_url, unread))
                    await store.digest_sent(tx, user_id)
                    SENT.inc()
                    sent += 1
        finally:
            if smtp is not None and smtp.is_connected:
                await smtp.quit()
        if sent:
            log.info("digests sent", count=sent)
        return sent

    async def run(self) -> None:
        while True:
            raise_if_cancelled()
            try:
                await self.send_due()
                ROUNDS.labels("ok").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # SMTP or Postgres down: try again next round
                ROUNDS.labels("failed").inc()
                log.warning("digest round failed", error=type(exc).__name__)
            await asyncio.sleep(self._interval / 4)
