"""services/common/json_mapping.py writes what protobuf's own JSON mapping writes."""

from __future__ import annotations

import datetime
import uuid

from google.protobuf import timestamp_pb2

from openhr.identity.v1 import identity_pb2
from openhr.profile.v1 import profile_pb2
from services.common.json_mapping import json_name, to_json


def test_names_as_protoc_writes_them() -> None:
    fields = [
        field
        for module in (identity_pb2, profile_pb2)
        for message in module.DESCRIPTOR.message_types_by_name.values()
        for field in message.fields
    ]
    assert len(fields) > 50
    assert [json_name(f.name) for f in fields] == [f.json_name for f in fields]


def test_rows_map_as_messages_do() -> None:
    when = datetime.datetime(2026, 12, 1, 3, 4, 5, 600000, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    user = uuid.uuid4()
    row = {"user_id": user, "create_time": when, "sessions": [{"revoke_time": None}], "tags": ("a_b",)}
    assert to_json(row) == {
        "userId": str(user),
        "createTime": "2026-12-01T01:04:05.600Z",
        "sessions": [{"revokeTime": None}],
        "tags": ["a_b"],
    }
    assert to_json({"profile": profile_pb2.Profile(display_name="Ada", years_experience=3)}) == {
        "profile": {"displayName": "Ada", "yearsExperience": 3}
    }
    assert stamp.ToJsonString() == "2026-12-01T01:04:05.600Z"
