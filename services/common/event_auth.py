"""Domain events signed by the service that produced them, so that writing to Redis alone
cannot make a consumer act (a forged MatchCreated would open a MATCHES_ONLY profile to a
stranger, a forged UserDeleted would lock a user out).

Topic `<service>` or `<service>.<part>` (stream `events.<topic>`) is produced by that service
only. Its outbox
relay signs each entry with the service's own Ed25519 key (the one that signs its service
tokens, services.common.service_auth) and publishes

    {"event_id": …, "data": <Event bytes>, "sig": Ed25519(b"openhr.event.v1\\n" + topic + b"\\n" + data)}

Every reader (consumer groups, fan-out, revocations) opens an entry with `EventVerifier.open`,
which checks the signature against the public key of the topic's producer from
OPENHR_SERVICE_KEYS. An entry without a valid signature is never applied: consumers move it
to the dead letters, readers skip it, and both count it (openhr_events_rejected_total) and log
a warning. The topic is signed too, so an event cannot be replayed into another stream."""

from __future__ import annotations

from pathlib import Path

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import DecodeError

from openhr.events.v1 import events_pb2
from services.common.metrics import EVENTS_REJECTED
from services.common.service_auth import PublicKeys, load_private_key

log = structlog.get_logger("events")
_CONTEXT = b"openhr.event.v1\n"
SIGNATURE_FIELD = "sig"


class EventRejected(Exception):
    """An entry that must not be applied; `reason` is a short label (metrics, logs)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def producer_of(topic: str) -> str:
    """The only service allowed to publish to a topic: its namesake ("messaging.live": messaging)."""
    return topic.split(".", 1)[0]


def _signed_bytes(topic: str, data: bytes) -> bytes:
    return _CONTEXT + topic.encode() + b"\n" + data


class EventSigner:
    """Signs the entries of this service's topics. The private key is read on first use (a
    local service creates its key pair when it starts, after its wiring is built)."""

    def __init__(self, key_dir: Path, name: str) -> None:
        self._dir, self.name = key_dir, name
        self._key: Ed25519PrivateKey | None = None

    def sign(self, topic: str, data: bytes) -> bytes:
        if producer_of(topic) != self.name:
            raise ValueError(f"{self.name} cannot publish to topic {topic!r}")
        if self._key is None:
            self._key = load_private_key(self._dir, self.name)
            if self._key is None:
                raise FileNotFoundError(f"no private key for {self.name} in {self._dir}")
        return self._key.sign(_signed_bytes(topic, data))


class EventVerifier:
    def __init__(self, keys: PublicKeys) -> None:
        self._keys = keys

    @classmethod
    def from_dir(cls, key_dir: Path) -> EventVerifier:
        return cls(PublicKeys(key_dir))

    def open(self, topic: str, fields: dict) -> events_pb2.Event:
        """The event of a stream entry whose signature its topic's producer made; else EventRejected."""
        data, signature = fields.get(b"data"), fields.get(SIGNATURE_FIELD.encode())
        if not isinstance(data, bytes):
            raise EventRejected("no_data")
        if not signature:
            raise EventRejected("unsigned")
        key = self._keys.get(producer_of(topic))
        if key is None:
            raise EventRejected("unknown_producer")
        try:
            key.verify(signature, _signed_bytes(topic, data))
        except InvalidSignature:
            raise EventRejected("bad_signature") from None
        try:
            return events_pb2.Event.FromString(data)
        except DecodeError:
            raise EventRejected("undecodable") from None

    def accept(self, topic: str, entry_id: bytes | str, fields: dict) -> events_pb2.Event | None:
        """`open`, or None for a rejected entry, which is counted and logged (never its content)."""
        try:
            return self.open(topic, fields)
        except EventRejected as rejected:
            stream = f"events.{topic}"
            EVENTS_REJECTED.labels(stream, rejected.reason).inc()
            log.warning("event rejected, not applied", stream=stream, entry=str(entry_id), reason=rejected.reason)
            return None
