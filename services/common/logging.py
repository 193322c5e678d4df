"""structlog JSON logs with the request id of the current RPC and PII redacted.

Every line carries `service` and, inside an RPC, `request_id` (Envoy's x-request-id, or one
we generate). Values under keys that may hold personal data are replaced, and anything that
looks like an email address inside other strings is masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_PII_KEYS = frozenset(
    {
        "email",
        "password",
        "new_password",
        "current_password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "text",
        "display_name",
        "name",
        "summary",
        "headline",
        "note",
        "phone",
        "resume",
    }
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_REDACTED = "[redacted]"


def current_request_id() -> str:
    """The request id of the RPC being served (bound by the interceptor), or "" outside one."""
    return structlog.contextvars.get_contextvars().get("request_id", "")


def redact_pii(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in _PII_KEYS:
            event[key] = _REDACTED
        elif isinstance(value, str) and "@" in value:  # the cheap test first: most values have none
            event[key] = _EMAIL.sub(_REDACTED, value)
    return event


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stdout; stdlib logging (grpc, asyncpg, alembic) goes through the same pipe."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_pii,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
