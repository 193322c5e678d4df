"""Messaging's limits and input rules, in one place: message text, ids, page sizes, cursors
and page tokens. Each check raises INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
import uuid

from services.common import errors

MAX_TEXT = 1000  # Unicode code points
MAX_REASON = 1000
MAX_EMAIL = 254
MAX_NOTICE_TITLE, MAX_NOTICE_USERS = 200, 1000
DEFAULT_PAGE, MAX_CONVERSATIONS_PAGE, MAX_MESSAGES_PAGE = 50, 100, 200
# The name a participant who deleted their account shows under.
DELETED_USER = "deleted user"
# First messages suggested in a conversation without any ({name}: the other participant's).
OPENERS = (
    "Hi {name}! What are you building at the moment?",
    "Hi {name}, what made you start looking for a co-founder?",
    "Hello {name}: which part of a company would you most like to own, and which would you hand over?",
)


def parse_uuid(value: str, field: str) -> str:
    if not value:
        raise errors.invalid_field(field, "is required")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.invalid_field(field, "must be a UUID") from None


def _visible(character: str) -> bool:
    """Neither whitespace nor a control/format/unassigned/separator code point."""
    return not character.isspace() and unicodedata.category(character)[0] not in ("C", "Z")


def validate_text(text: str, field: str = "text", limit: int = MAX_TEXT) -> str:
    """1-`limit` code points with at least one visible character; kept as written."""
    if not text:
        raise errors.invalid_field(field, "must not be empty")
    if len(text) > limit:
        raise errors.invalid_field(field, f"must be at most {limit} characters (got {len(text)})")
    if not any(_visible(c) for c in text):
        raise errors.invalid_field(field, "must contain visible characters, not only whitespace or control characters")
    if "\x00" in text:
        raise errors.invalid_field(field, "must not contain NUL characters")
    return text


def validate_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.partition("@")
    if len(email) > MAX_EMAIL or not at or not local or "." not in domain or any(c.isspace() for c in email):
        raise errors.invalid_field("email", "must be an address like name@example.com")
    return email


def page_size(value: int, maximum: int, field: str = "page_size") -> int:
    if value < 0 or value > maximum:
        raise errors.invalid_field(field, f"must be between 1 and {maximum}")
    return value or min(DEFAULT_PAGE, maximum)


def parse_cursor(value: str) -> int | None:
    """A StreamEvents cursor: empty (start from now) or the decimal seq of a user event."""
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise errors.invalid_field("cursor", "must be a cursor returned by StreamEvents")
    return int(value)


def encode_token(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_token(token: str, keys: tuple[str, ...], field: str = "page_token") -> dict | None:
    """The dict a next_page_token carried; None for an empty token."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise errors.invalid_field(field, "is not a token this service returned") from None
    if not isinstance(data, dict) or set(data) != set(keys):
        raise errors.invalid_field(field, "is not a token this service returned")
    return data


def suggested_openers(conversation, caller: str) -> list[str]:
    """OPENERS addressed to the caller's counterpart, for a conversation (a messaging_pb2.
    Conversation) without messages that one can still send to; none otherwise."""
    if conversation.HasField("last_message") or conversation.blocked:
        return []
    others = [p for p in conversation.participants if p.user_id != caller]
    if not others or others[0].deleted:
        return []
    return [opener.format(name=others[0].display_name or "there") for opener in OPENERS]
