"""Request-body rules of the REST edge, read from the contracts.

Envoy's grpc_json_transcoder drops unknown JSON fields silently (and, with them, unknown enum
names): `{"displayname": "A"}` becomes an empty CreateProfile. The validator checks every REST
body against the request message of its route first. This module is the pure part: the
`google.api.http` rules of the public services -> matchers (HTTP method + path template) ->
the message the body must parse into, and a ParseError -> the field it names (as the
services name fields in their own INVALID_ARGUMENT errors: the proto path from the gRPC
request message, e.g. "profile.preferences.stage.stagez").

Body mapping (google/api/http.proto):
  body: "*"      the body is the whole request message minus the fields bound by the path
  body: "field"  the body is that field of the request message (e.g. a Profile)
  no body        the method takes no body (GET, most DELETEs)
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qsl

from google.api import annotations_pb2  # registers the google.api.http option
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from services.common.errors import FieldViolation
from services.common.field_paths import element_type, field_named, is_map, proto_path

# Path template grammar (google/api/http.proto):
#   Template = "/" Segments [ Verb ] ; Segment = "*" | "**" | LITERAL | Variable ;
#   Variable = "{" FieldPath [ "=" Segments ] "}" ; Verb = ":" LITERAL ;
_LITERAL, _ONE, _MANY = 0, 1, 2  # segment kinds; a lower kind is more specific
_SEGMENT_REGEX = {_ONE: "[^/]+", _MANY: ".*"}

BODY_NOT_OBJECT = "the request body must be a JSON object"
NO_BODY = "this method takes no request body"
PATH_BOUND = "set by the URL path; not allowed in the body"
UNKNOWN_FIELD = "unknown field"
NOT_JSON = "the request body is not valid JSON"
NOT_UTF8 = "the request body is not UTF-8 text"
UNKNOWN_PARAMETER = "unknown query parameter"
NOT_A_PARAMETER = "cannot be set in the query string"
# How the transcoder reads a boolean query parameter (protobuf's safe_strtob), case aside.
_QUERY_BOOLEANS = {
    **dict.fromkeys(("true", "t", "yes", "y", "1"), True),
    **dict.fromkeys(("false", "f", "no", "n", "0"), False),
}
# Our contracts nest a few levels; Python's JSON parser recurses (3,000 levels: RecursionError).
MAX_JSON_DEPTH = 64
TOO_DEEP = f"the request body is nested deeper than {MAX_JSON_DEPTH} levels"
# Unrolled (no alternation per character): a 6.5 MB base64 string takes 0.04 s, not 1.2 s.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests arrays and objects deeper than `limit`, found without parsing
    it (strings removed first: brackets in them are text)."""
    depth = 0
    for bracket in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        depth += 1 if bracket in b"[{" else -1
        if depth > limit:
            return True
    return False


@dataclass(frozen=True)
class PathTemplate:
    template: str
    regex: re.Pattern[str]
    # Field paths bound by the template's variables, e.g. ("profile", "profile_id").
    variables: tuple[tuple[str, ...], ...]
    # Per segment kind (literal < one segment < many), then verb before no verb: sorted
    # ascending, the first template that matches a path is the most specific one.
    rank: tuple[int, ...]

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None


def _split_verb(template: str) -> tuple[str, str]:
    """Splits off the verb: "/v1/matches/{profile_id}:like" -> ("/v1/matches/{profile_id}", "like")."""
    tail_start = max(template.rfind("/"), template.rfind("}"))
    colon = template.find(":", tail_start + 1)
    if colon < 0:
        return template, ""
    return template[:colon], template[colon + 1 :]


def _split_segments(text: str) -> list[str]:
    """Splits on "/" outside braces: "a/{b=c/*}/d" -> ["a", "{b=c/*}", "d"]."""
    segments, depth, current = [], 0, []
    for char in text:
        if char == "/" and depth == 0:
            segments.append("".join(current))
            current = []
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        current.append(char)
    segments.append("".join(current))
    return segments


def _segment(segment: str) -> tuple[str, int]:
    if segment == "*":
        return _SEGMENT_REGEX[_ONE], _ONE
    if segment == "**":
        return _SEGMENT_REGEX[_MANY], _MANY
    return re.escape(segment), _LITERAL


def compile_template(template: str) -> PathTemplate:
    """A google.api.http path template -> an anchored regex over the request path (no query).

    `{var}` and `{a.b}` match one segment; `{var=pattern}` matches its pattern (`*` one
    segment, `**` any number); a `:verb` suffix is literal."""
    if not template.startswith("/"):
        raise ValueError(f"path template must start with '/': {template!r}")
    path, verb = _split_verb(template)
    parts: list[str] = []
    kinds: list[int] = []
    variables: list[tuple[str, ...]] = []
    for segment in _split_segments(path[1:]):
        if segment.startswith("{"):
            if not segment.endswith("}"):
                raise ValueError(f"unbalanced braces in path template {template!r}")
            name, _, pattern = segment[1:-1].partition("=")
            variables.append(tuple(name.strip().split(".")))
            sub = [_segment(s) for s in _split_segments(pattern)] if pattern else [(_SEGMENT_REGEX[_ONE], _ONE)]
            parts.append("/".join(regex for regex, _ in sub))
            kinds.append(max(kind for _, kind in sub))
        else:
            regex, kind = _segment(segment)
            parts.append(regex)
            kinds.append(kind)
    regex = "/" + "/".join(parts) + (":" + re.escape(verb) if verb else "")
    return PathTemplate(template, re.compile(regex), tuple(variables), (*kinds, 0 if verb else 1))


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class BodyRule:
    """One public HTTP binding: what a REST body sent to it must parse into."""

    http_method: str  # "POST"
    path: PathTemplate
    rpc: str  # "/openhr.profile.v1.ProfileService/CreateProfile"
    request: Descriptor
    body: str  # "", "*" or the name of a field of the request message

    @cached_property
    def body_field(self) -> FieldDescriptor | None:
        if self.body in ("", "*"):
            return None
        field = self.request.fields_by_name.get(self.body)
        if field is None:
            raise ValueError(f"{self.rpc}: body field {self.body!r} is not a field of {self.request.full_name}")
        return field

    @cached_property
    def body_message(self) -> Descriptor | None:
        """The message a JSON object body parses into directly; None when the body field is a
        scalar, a list, a map or a well-known type with its own JSON form (parsed wrapped)."""
        if self.body == "*":
            return self.request
        field = self.body_field
        if (
            field is not None
            and field.type == FieldDescriptor.TYPE_MESSAGE
            and not field.is_repeated
            and not field.message_type.full_name.startswith("google.protobuf.")
        ):
            return field.message_type
        return None


def load_descriptor_set(path: str | Path) -> tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool]:
    """The FileDescriptorSet from `buf build` (imports included) and a pool holding it."""
    files = descriptor_pb2.FileDescriptorSet.FromString(Path(path).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in files.file}
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        file = pending[name]
        for dependency in file.dependency:
            if dependency in pending:
                add(dependency)
        pool.Add(file)
        added.add(name)

    for name in pending:
        add(name)
    return files, pool


def _bindings(rule) -> Iterable[tuple[str, str, str]]:
    """(HTTP method, path template, body) of an HttpRule and its additional bindings."""
    for binding in (rule, *rule.additional_bindings):
        pattern = binding.WhichOneof("pattern")
        if pattern is None:
            continue
        if pattern == "custom":
            yield binding.custom.kind.upper(), binding.custom.path, binding.body
        else:
            yield pattern.upper(), getattr(binding, pattern), binding.body


def build_rules(
    files: descriptor_pb2.FileDescriptorSet, pool: descriptor_pool.DescriptorPool, services: Iterable[str]
) -> list[BodyRule]:
    """Every google.api.http binding of the given services' methods."""
    wanted = set(services)
    rules: list[BodyRule] = []
    for file in files.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}" if file.package else service.name
            if full_name not in wanted:
                continue
            wanted.discard(full_name)
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                request = pool.FindMessageTypeByName(method.input_type.lstrip("."))
                for http_method, template, body in _bindings(method.options.Extensions[annotations_pb2.http]):
                    rule = BodyRule(
                        http_method, compile_template(template), f"/{full_name}/{method.name}", request, body
                    )
                    _ = rule.body_field  # a body naming no field fails at start, not per request
                    rules.append(rule)
    if wanted:
        raise ValueError(f"services not in the descriptor set: {', '.join(sorted(wanted))}")
    return rules


# --------------------------------------------------------------------------- parse errors

_CHAIN = re.compile(r"Failed to parse (?P<field>\S+?) field: ")
_UNKNOWN = re.compile(r'has no field named "(?P<name>[^"]*)" at "(?P<path>[^"]*)"')
_AVAILABLE = re.compile(r"Available Fields\(except extensions\): \"\[(?P<names>[^\]]*)\]\"")
_ENUM = re.compile(r"Invalid enum value (?P<value>.*?) for enum type (?P<enum>[\w.]+) at (?P<path>\S+?)\.*$", re.S)
_AT = re.compile(r"^(?P<text>.*?) at (?P<path>[A-Za-z_]\w*(?:\.\w+|\[[^\]]*\])*)\.*$", re.S)
# Python-isms in protobuf's messages, as a REST client would read them.
_REWORDED = (
    (re.compile(r"expected string or bytes-like object.*", re.S), "expected a JSON string"),
    (
        re.compile(r"(invalid literal for int\(\) with base 10|Couldn't parse (integer|non-integer string)).*", re.S),
        "expected an integer",
    ),
    (re.compile(r"Value out of range.*", re.S), "out of range"),
    (re.compile(r"Expected true or false.*", re.S), "expected true or false"),
    (re.compile(r"(could not convert string to float|Couldn't parse float).*", re.S), "expected a number"),
)


def _relative(path: str) -> str:
    """Drops the root message's name: "Profile.preferences.stage" -> "preferences.stage"."""
    _, _, rest = path.partition(".")
    return rest


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p).replace(".[", "[")


def _reword(text: str) -> str:
    text = text.strip().rstrip(".")
    for pattern, replacement in _REWORDED:
        if pattern.fullmatch(text):
            return replacement
    return text


def _enum_problem(value: str, enum: str, pool: descriptor_pool.DescriptorPool | None) -> str:
    """What is wrong with an enum value, in the words of the JSON mapping: the names it takes
    (never the enum's proto type name, when the pool knows it)."""
    try:
        names = [v.name for v in pool.FindEnumTypeByName(enum).values] if pool is not None else None
    except KeyError:
        names = None
    if names is None:
        return f"unknown value {json.dumps(value)} for enum {enum}"
    return f"unknown value {json.dumps(value)}; expected one of {', '.join(names)}"


def violation_from_parse_error(text: str, pool: descriptor_pool.DescriptorPool | None = None) -> FieldViolation:
    """The field a json_format.ParseError names, relative to the message parsed (JSON names
    as the client wrote them, list indexes kept: "skills[0].nme"), and what is wrong with it.

    Tolerant of the message formats protobuf's Python JSON parser has used: an unknown field
    ('has no field named "x" at "Root.a"'), an unknown enum name, a wrong value ('... at
    Root.a.b.'), or only the chain of 'Failed to parse a field: ' prefixes. Anything else
    names no field and keeps the whole text."""
    chain: list[str] = []
    rest = text
    while match := _CHAIN.match(rest):
        chain.append(match["field"])
        rest = rest[match.end() :]
    if match := _UNKNOWN.search(rest):
        field = _join(_relative(match["path"]), match["name"])
        description = UNKNOWN_FIELD
        if available := _AVAILABLE.search(rest):
            names = re.findall(r"'([^']*)'", available["names"])
            if close := difflib.get_close_matches(match["name"], names, n=1, cutoff=0.6):
                description += f'; did you mean "{close[0]}"?'
        return FieldViolation(field, description)
    if match := _ENUM.search(rest):
        return FieldViolation(_relative(match["path"]), _enum_problem(match["value"], match["enum"], pool))
    if match := _AT.match(rest.strip()):
        return FieldViolation(_relative(match["path"]), _reword(match["text"]))
    if chain:
        return FieldViolation(".".join(chain), _reword(rest))
    return FieldViolation("", text.strip())


# --------------------------------------------------------------------------- the rule set

def _is_plain_message(message: Descriptor | None) -> bool:
    """A message whose JSON form is an object of its fields (not a well-known type)."""
    return message is not None and not message.full_name.startswith("google.protobuf.")


def _shape_violation(message: Descriptor, data: Mapping, path: str = "") -> FieldViolation | None:
    """The first known field whose JSON value has the wrong shape: an object field given no
    object, a list given no array. protobuf's Python parser iterates such values instead of
    rejecting them (a string for a message reads as its characters being field names)."""
    for key, value in data.items():
        field = field_named(message, key)
        if field is None or value is None:
            continue  # unknown keys: the parser names them; null: the field's default
        where = _join(path, field.name)
        element = element_type(field)
        if is_map(field):
            if not isinstance(value, dict):
                return FieldViolation(where, "expected a JSON object")
            items = [(f"{where}[{json.dumps(k)}]", v) for k, v in value.items()]
        elif field.is_repeated:
            if not isinstance(value, list):
                return FieldViolation(where, "expected a JSON array")
            items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(where, value)]
        if not _is_plain_message(element):
            continue
        for item_path, item in items:
            if item is None:
                continue  # the parser rejects a null element itself
            if not isinstance(item, dict):
                return FieldViolation(item_path, "expected a JSON object")
            if found := _shape_violation(element, item, item_path):
                return found
    return None


def _path_bound_violations(rule: BodyRule, data: Mapping) -> list[FieldViolation]:
    """Fields that body "*" must not carry because the path sets them."""
    found = []
    for variable in rule.path.variables:
        message: Descriptor | None = rule.request
        node: object = data
        for depth, name in enumerate(variable):
            field = message.fields_by_name.get(name) if message is not None else None
            if field is None or not isinstance(node, Mapping):
                break
            key = next((k for k in (field.json_name, field.name) if k in node), None)
            if key is None:
                break
            if depth == len(variable) - 1:
                found.append(FieldViolation(".".join(variable), PATH_BOUND))
            message, node = field.message_type, node[key]
    return found


class Rules:
    """Matches REST requests to their binding and checks their JSON bodies.

    Violations name fields as the services do in their own INVALID_ARGUMENT errors: the
    proto field path from the gRPC request message ("profile.preferences.stage.stagez" for a
    body bound to `profile`; "proficiency" for body "*"), unknown names as the client wrote them.
    """

    def __init__(self, rules: Iterable[BodyRule], pool: descriptor_pool.DescriptorPool) -> None:
        self.pool = pool
        self.rules = sorted(rules, key=lambda r: (r.http_method, r.path.rank, r.path.template))
        self._by_method: dict[str, list[BodyRule]] = {}
        self._by_rpc: dict[str, list[BodyRule]] = {}
        for rule in self.rules:
            self._by_method.setdefault(rule.http_method, []).append(rule)
            self._by_rpc.setdefault(rule.rpc, []).append(rule)

    @classmethod
    def from_descriptor_set(cls, path: str | Path, services: Iterable[str]) -> Rules:
        files, pool = load_descriptor_set(path)
        return cls(build_rules(files, pool, services), pool)

    def match(self, http_method: str, path: str, rpc: str = "") -> BodyRule | None:
        """The binding a REST request is served by: the most specific one of this HTTP method
        and path (query string ignored). When the transcoder already chose the RPC (`rpc`,
        its gRPC path), only that RPC's bindings count, and a single one is the answer."""
        path = path.split("?", 1)[0].split("#", 1)[0]
        method = http_method.upper()
        candidates = self._by_rpc.get(rpc)
        if candidates is not None and len(candidates) == 1:
            return candidates[0]
        for rule in candidates or self._by_method.get(method, ()):
            if rule.http_method == method and rule.path.matches(path):
                return rule
        return None

    def _parse(self, message: Descriptor, data: Mapping) -> FieldViolation | None:
        if found := _shape_violation(message, data):
            return found
        try:
            json_format.ParseDict(
                data,
                message_factory.GetMessageClass(message)(),
                ignore_unknown_fields=False,
                descriptor_pool=self.pool,
            )
        except json_format.ParseError as exc:
            found = violation_from_parse_error(str(exc), self.pool)
            return FieldViolation(proto_path(message, found.field), found.description)
        return None

    def check(self, rule: BodyRule, body: bytes | str) -> list[FieldViolation]:
        """What is wrong with a body sent to this binding ([] when nothing)."""
        if json_depth_exceeds(body.encode() if isinstance(body, str) else body):
            return [FieldViolation("", TOO_DEEP)]
        try:
            data = json.loads(body)
        except UnicodeDecodeError:
            return [FieldViolation("", NOT_UTF8)]
        except json.JSONDecodeError as exc:  # its position only: the body is never echoed
            return [FieldViolation("", f"{NOT_JSON}: {exc.msg.lower()} at line {exc.lineno} column {exc.colno}")]
        if not rule.body:
            # The transcoder ignores the body of a method that takes none: only an empty
            # one (null, {}) is accepted, rather than dropping what the client meant.
            if data is None or data == {}:
                return []
            if isinstance(data, dict):
                return [FieldViolation(key, NO_BODY) for key in data]
            return [FieldViolation("", NO_BODY)]
        if rule.body_message is None:
            # A scalar, list, map or well-known-type body: parsed as its field of the request.
            found = self._parse(rule.request, {rule.body_field.json_name: data})
            return [] if found is None else [found]
        if not isinstance(data, dict):
            return [FieldViolation(rule.body if rule.body != "*" else "", BODY_NOT_OBJECT)]
        if rule.body == "*":
            if bound := _path_bound_violations(rule, data):
                return bound
            found = self._parse(rule.request, data)
            return [] if found is None else [found]
        found = self._parse(rule.body_message, data)
        return [] if found is None else [FieldViolation(_join(rule.body, found.field), found.description)]

    def check_query(self, rule: BodyRule, query: str) -> list[FieldViolation]:
        """What is wrong with a REST request's query string, one violation per parameter named
        as the client wrote it: a name that is no field of the request message (dotted paths
        into nested messages, JSON or proto names, as the transcoder takes them), a message a
        query cannot set, or a value its field's type does not take."""
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        return [found for name, given in values.items() if (found := self._query_violation(rule, name, given))]

    def _query_violation(self, rule: BodyRule, name: str, values: list[str]) -> FieldViolation | None:
        current: Descriptor | None = rule.request
        fields: list[FieldDescriptor] = []
        for segment in name.split("."):
            field = field_named(current, segment)
            if field is None:
                known = [f.json_name for f in current.fields] if current is not None else []
                close = difflib.get_close_matches(segment, known, n=1, cutoff=0.6)
                return FieldViolation(name, UNKNOWN_PARAMETER + (f'; did you mean "{close[0]}"?' if close else ""))
            fields.append(field)
            plain = field.type == FieldDescriptor.TYPE_MESSAGE and _is_plain_message(field.message_type)
            current = field.message_type if plain and not field.is_repeated else None
        leaf = fields[-1]
        if is_map(leaf) or (leaf.type == FieldDescriptor.TYPE_MESSAGE and _is_plain_message(leaf.message_type)):
            return FieldViolation(name, NOT_A_PARAMETER)
        if leaf.type == FieldDescriptor.TYPE_MESSAGE and leaf.message_type.full_name not in _WRAPPERS:
            return None  # a FieldMask, Timestamp, …: the transcoder's own parser reads them more leniently
        value: object = [_query_value(leaf, v) for v in values] if leaf.is_repeated else _query_value(leaf, values[-1])
        for field in reversed(fields):
            value = {field.json_name: value}
        try:
            json_format.ParseDict(value, message_factory.GetMessageClass(rule.request)(), descriptor_pool=self.pool)
        except json_format.ParseError as exc:
            return FieldViolation(name, violation_from_parse_error(str(exc), self.pool).description)
        return None


# Well-known wrappers of one scalar, read from the query as that scalar.
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}


def _query_value(field: FieldDescriptor, text: str) -> object:
    """A query value as its JSON form for the parser: booleans read as the transcoder reads
    them, everything else a string (the parser takes numbers and enum names as strings)."""
    wrapped = field.message_type.fields_by_name.get("value", field) if field.message_type is not None else field
    if wrapped.type == FieldDescriptor.TYPE_BOOL:
        return _QUERY_BOOLEANS.get(text.lower(), text)
    return text
