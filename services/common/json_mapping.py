"""The proto3 JSON mapping for data that is not (yet) a message, said once: what a user data
export assembles from rows (services/common/user_data.py, services/identity/privacy.py) answers
in the same JSON as every message over REST: lowerCamelCase names, RFC 3339 UTC timestamps with
`Z`, enums by name, 64-bit-safe ids as strings."""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from collections.abc import Mapping

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message


def json_name(name: str) -> str:
    """A field name as proto3 JSON writes it ("create_time" -> "createTime"), protoc's rule."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def timestamp(value: datetime.datetime) -> str:
    """A time as google.protobuf.Timestamp's JSON: RFC 3339 in UTC with `Z`."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(datetime.UTC) if value.tzinfo else value)
    return stamp.ToJsonString()


def to_json(value):
    """A message, or a tree of mappings, sequences and scalars as rows hold them, in the proto3
    JSON mapping (keys through json_name at every level; None stays null)."""
    if isinstance(value, Message):
        return json_format.MessageToDict(value)
    if isinstance(value, Mapping):
        return {json_name(str(key)): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, datetime.datetime):
        return timestamp(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value
