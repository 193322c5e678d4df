"""Field paths of request messages, in the two spellings clients use: proto names for gRPC
callers ("profile.years_experience", as the services name fields in google.rpc.BadRequest) and
JSON names for REST callers ("profile.yearsExperience", as their bodies and query strings do).

One mapping for the whole REST surface: the services' errors (interceptors.py, on transcoded
requests) and the edge's REST body validator (edge/validation) both rename through json_path."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

# Envoy's transcoder sets it on every request it made from a REST call (and the edge drops a
# client's own, envoy.yaml.j2 early_header_mutation): its presence marks a REST caller.
TRANSCODED_HEADER = "x-envoy-original-method"

_SEGMENT = re.compile(r"(?P<name>[^.\[]+)(?P<index>(?:\[[^\]]*\])*)")


def field_named(message: Descriptor | None, key: str) -> FieldDescriptor | None:
    """The field a key names (its proto name or its JSON name), if any."""
    if message is None:
        return None
    field = message.fields_by_name.get(key)
    if field is None:
        field = next((f for f in message.fields if f.json_name == key), None)
    return field


def is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def element_type(field: FieldDescriptor) -> Descriptor | None:
    """The message type of a field's values (a map's value type), None for scalars."""
    if is_map(field):
        return field.message_type.fields_by_name["value"].message_type
    return field.message_type


def _renamed(message: Descriptor, path: str, name: Callable[[FieldDescriptor], str]) -> str:
    parts = []
    current: Descriptor | None = message
    for segment in _SEGMENT.finditer(path):
        field = field_named(current, segment["name"])
        if field is None:
            parts.append(segment[0])
            current = None
        elif field.is_repeated:  # a list or a map: an element's fields follow its index
            parts.append(name(field) + segment["index"])
            current = element_type(field) if segment["index"] else None
        else:
            parts.append(name(field) + segment["index"])
            current = field.message_type
    return ".".join(parts)


def proto_path(message: Descriptor, path: str) -> str:
    """A field path in either spelling -> proto names from `message` on ("skills[3].endorsementCount"
    -> "skills[3].endorsement_count"). Segments past a name `message` does not know stay as written."""
    return _renamed(message, path, lambda field: field.name)


def json_path(message: Descriptor, path: str) -> str:
    """A field path in either spelling -> JSON names from `message` on ("profile.years_experience"
    -> "profile.yearsExperience"). Segments past a name `message` does not know stay as written."""
    return _renamed(message, path, lambda field: field.json_name)


@lru_cache(maxsize=512)
def request_message(rpc: str) -> Descriptor | None:
    """The request message of a gRPC method path ("/openhr.profile.v1.ProfileService/GetProfile"),
    from the generated modules the service imported; None for a method the pool does not know."""
    try:
        return descriptor_pool.Default().FindMethodByName(rpc.strip("/").replace("/", ".")).input_type
    except KeyError:
        return None
