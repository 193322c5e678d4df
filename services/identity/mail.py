"""Verification and password-reset messages over SMTP (aiosmtplib).

Sending happens after the transaction that created the link committed: a failed send loses
nothing but the message (logged without the address), and the user can ask again
(ResendVerificationEmail, RequestPasswordReset). Locally and
in tests the SMTP peer is aiosmtpd writing a Maildir (deploy/local/stack.py)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import quote

import aiosmtplib
import structlog

from services.identity.tokens import RESET_PASSWORD_TTL, VERIFY_EMAIL_TTL

log = structlog.get_logger("mail")

SEND_TIMEOUT = 10.0


def _minutes(ttl) -> int:
    return int(ttl.total_seconds() // 60)


class Mailer:
    def __init__(self, *, host: str, port: int, sender: str, public_url: str) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._public_url = public_url.rstrip("/")
        self._pending: set[asyncio.Task] = set()

    def link(self, page: str, token: str) -> str:
        return f"{self._public_url}/{page}?token={quote(token)}"

    def _message(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="openhr")
        # 7bit keeps the link readable as it is in the raw message (QP would wrap it with "=").
        message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
        return message

    async def _send(self, message: EmailMessage, purpose: str) -> bool:
        try:
            await aiosmtplib.send(message, hostname=self._host, port=self._port, timeout=SEND_TIMEOUT)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.warning("mail not sent", purpose=purpose, error=type(exc).__name__)
            return False
        log.info("mail sent", purpose=purpose)
        return True

    async def send_verification(self, to: str, token: str) -> bool:
        hours = int(VERIFY_EMAIL_TTL.total_seconds() // 3600)
        body = (
            "Welcome to OpenHR.\n\n"
            f"Confirm your email address by opening this link within {hours} hours:\n\n"
            f"{self.link('verify-email', token)}\n\n"
            "If you did not sign up, ignore this message.\n"
        )
        return await self._send(self._message(to, "Confirm your email address", body), "verify_email")

    async def send_password_reset(self, to: str, token: str) -> bool:
        body = (
            "Someone asked to reset the password of your OpenHR account.\n\n"
            f"Choose a new password by opening this link within {_minutes(RESET_PASSWORD_TTL)} minutes; "
            "it works once:\n\n"
            f"{self.link('reset-password', token)}\n\n"
            "If it was not you, ignore this message: your password stays as it is.\n"
        )
        return await self._send(self._message(to, "Reset your OpenHR password", body), "reset_password")

    def in_background(self, send) -> None:
        """Sends without making the caller wait (its timing must not reveal whether it sent)."""
        task = asyncio.create_task(send)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Waits (at most one send timeout) for background sends on shutdown."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=SEND_TIMEOUT)
