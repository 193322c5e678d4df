"""The REST API's OpenAPI 3.1 document, generated from the contracts.

Everything comes from the descriptor set Envoy's transcoder loads (`buf build`, comments
included): the `google.api.http` bindings of the public services (services/common/surface.py)
become operations, the request fields a binding leaves to the URL become path and query
parameters, the rest the JSON body; messages become schemas in the proto3 JSON mapping Envoy
speaks (camelCase names, enums by name, 64-bit integers as strings, well-known types in their
JSON forms); comments become descriptions; `google.api.field_behavior` marks REQUIRED and
OUTPUT_ONLY fields; every error is the google.rpc.Status body. Identity's public methods need
no token; every other operation needs a bearer access token.

CLI: `python -m edge.openapi --descriptor gen/openhr.binpb --out gen/openapi.json`
(the Makefile runs it with `make protos`; Envoy serves the result at /openapi.json)."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from edge.validation.rules import BodyRule, build_rules, load_descriptor_set
from services.common import surface
from services.common.field_paths import is_map

TITLE = "OpenHR REST API"
STATUS = "google.rpc.Status"
HTTP_BODY = "google.api.HttpBody"
_INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"minimum": 0, "maximum": 2**32 - 1}
# proto3 JSON: 64-bit integers print as strings and parse from strings or numbers.
_INT64 = {"type": ["string", "integer"], "pattern": r"^-?[0-9]+$", "format": "int64"}
_UINT64 = {"type": ["string", "integer"], "pattern": r"^[0-9]+$", "format": "uint64"}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32", **_INT32},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32", **_INT32},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32", **_INT32},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", **_UINT32},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", **_UINT32},
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
}
# Well-known types have JSON forms of their own (the protobuf JSON mapping).
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated camelCase field paths."},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}, "required": ["@type"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "contentEncoding": "base64"},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], **_INT32},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], **_UINT32},
    "google.protobuf.Int64Value": {**_INT64, "type": ["string", "integer", "null"]},
    "google.protobuf.UInt64Value": {**_UINT64, "type": ["string", "integer", "null"]},
}
# The errors any operation may answer (HTTP status -> response name, what it means), each a
# google.rpc.Status body: the gRPC codes the services use, as Envoy's transcoder maps them, and
# what the edge answers itself (body too large, rate limited).
ERRORS: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE: a google.rpc.BadRequest names each bad field.",
    ),
    "401": ("Unauthenticated", "UNAUTHENTICATED: a missing, expired or refused token, or wrong credentials."),
    "403": ("PermissionDenied", "PERMISSION_DENIED: the caller may not do this (another user's resource)."),
    "404": ("NotFound", "NOT_FOUND: no such resource (or path)."),
    "409": ("Conflict", "ALREADY_EXISTS or ABORTED: a duplicate, or a concurrent change (retry)."),
    "413": ("PayloadTooLarge", "The body is over the route's size limit."),
    "429": ("RateLimited", "RESOURCE_EXHAUSTED: rate limited; RetryInfo says when to retry."),
    "503": ("Unavailable", "UNAVAILABLE: a service is down or overloaded; retry with backoff."),
    "504": ("DeadlineExceeded", "DEADLINE_EXCEEDED: the request took too long; retry."),
}
_PATH_VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")


def _comments(files: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Full name of every service, method, message, field, enum and enum value -> its leading
    comment (source info paths: 4 message, 2 field, 3 nested message, 5/4 enum, 2 value, 6 service)."""
    found: dict[str, str] = {}

    def enum(by_path: dict, path: tuple[int, ...], prefix: str, e: descriptor_pb2.EnumDescriptorProto) -> None:
        found[prefix + e.name] = by_path.get(path, "")
        for i, value in enumerate(e.value):
            found[f"{prefix}{e.name}.{value.name}"] = by_path.get((*path, 2, i), "")

    def message(by_path: dict, path: tuple[int, ...], prefix: str, m: descriptor_pb2.DescriptorProto) -> None:
        name = prefix + m.name
        found[name] = by_path.get(path, "")
        for i, field in enumerate(m.field):
            found[f"{name}.{field.name}"] = by_path.get((*path, 2, i), "")
        for i, nested in enumerate(m.nested_type):
            message(by_path, (*path, 3, i), name + ".", nested)
        for i, nested in enumerate(m.enum_type):
            enum(by_path, (*path, 4, i), name + ".", nested)

    for file in files.file:
        by_path = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}
        package = f"{file.package}." if file.package else ""
        for i, m in enumerate(file.message_type):
            message(by_path, (4, i), package, m)
        for i, e in enumerate(file.enum_type):
            enum(by_path, (5, i), package, e)
        for i, service in enumerate(file.service):
            found[package + service.name] = by_path.get((6, i), "")
            for j, method in enumerate(service.method):
                found[f"{package}{service.name}.{method.name}"] = by_path.get((6, i, 2, j), "")
    return found


def _behaviors(field: FieldDescriptor) -> set[int]:
    return set(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


class _Schemas:
    """components.schemas: one schema per message and enum reached from an operation."""

    def __init__(self, comments: dict[str, str]) -> None:
        self._comments = comments
        self.components: dict[str, dict[str, Any]] = {}

    def _describe(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        if self._comments.get(full_name):
            schema["description"] = self._comments[full_name]
        return schema

    def ref(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.full_name not in self.components:
            self.components[message.full_name] = {}  # placeholder: recursion ends here
            self.components[message.full_name] = self._message(message)
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def enum_ref(self, enum: EnumDescriptor) -> dict[str, Any]:
        if enum.full_name not in self.components:
            self.components[enum.full_name] = self._describe(
                {"type": "string", "enum": [value.name for value in enum.values]}, enum.full_name
            )
        return {"$ref": f"#/components/schemas/{enum.full_name}"}

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        """A field's schema as it appears in JSON, described by its comment."""
        if is_map(field):
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self._single(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self._single(field)}
        else:
            schema = self._single(field)
        if "$ref" in schema:  # a $ref's siblings describe this use of it
            schema = {"allOf": [schema]}
        if field_behavior_pb2.OUTPUT_ONLY in _behaviors(field):
            schema["readOnly"] = True
        return self._describe(schema, field.full_name)

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            return self.ref(field.message_type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return self.enum_ref(field.enum_type)
        return dict(_SCALARS[field.type])

    def _message(self, message: Descriptor, *, leave_out: Iterable[str] = ()) -> dict[str, Any]:
        skipped = set(leave_out)
        fields = [f for f in message.fields if f.name not in skipped]
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.json_name: self.field(f) for f in fields},
            "additionalProperties": False,
        }
        required = [f.json_name for f in fields if field_behavior_pb2.REQUIRED in _behaviors(f)]
        if required:
            schema["required"] = required
        return self._describe(schema, message.full_name)

    def body(self, message: Descriptor, path_bound: set[str]) -> dict[str, Any]:
        """`body: "*"`: the request message without the fields the path binds."""
        if not path_bound:
            return self.ref(message)
        return self._message(message, leave_out=path_bound)


def _query_parameters(schemas: _Schemas, message: Descriptor, bound: set[str], prefix: str = "") -> list[dict]:
    """Fields left to the query string: scalars, enums and repeated scalars by camelCase path;
    nested messages (not well-known ones) by dotted path, as the transcoder reads them."""
    parameters = []
    for field in message.fields:
        name = prefix + field.json_name
        if field.name in bound or is_map(field):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in _WELL_KNOWN:
            if not field.is_repeated:
                parameters += _query_parameters(schemas, field.message_type, set(), name + ".")
            continue
        schema = schemas.field(field)
        parameter = {"name": name, "in": "query", "required": False, "schema": schema}
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        if field.is_repeated:
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _parameter_name(variable: str) -> str:
    """A path variable's name in the document: its last field's camelCase name
    ("profile.profile_id" -> "profileId"), so equal paths read equal."""
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), variable.rsplit(".", 1)[-1])


def _openapi_path(template: str) -> tuple[str, list[str]]:
    """"/v1/profiles/{profile.profile_id}" -> ("/v1/profiles/{profileId}", ["profile.profile_id"])."""
    variables = [m.group(1).strip() for m in _PATH_VARIABLE.finditer(template)]
    return _PATH_VARIABLE.sub(lambda m: "{" + _parameter_name(m.group(1).strip()) + "}", template), variables


def _path_field(message: Descriptor, dotted: str) -> FieldDescriptor:
    field = None
    for part in dotted.split("."):
        field = message.fields_by_name[part]
        message = field.message_type
    assert field is not None
    return field


def _operation(schemas: _Schemas, comments: dict[str, str], rule: BodyRule, response: Descriptor) -> dict:
    service, method = rule.rpc.strip("/").split("/")
    _, variables = _openapi_path(rule.path.template)
    parameters = []
    for variable in variables:
        field = _path_field(rule.request, variable)
        schema = schemas.field(field)
        parameters.append(
            {
                "name": _parameter_name(variable),
                "in": "path",
                "required": True,
                "schema": {k: v for k, v in schema.items() if k != "description"},
                **({"description": schema["description"]} if "description" in schema else {}),
            }
        )
    top_bound = {v.split(".")[0] for v in variables}
    operation: dict[str, Any] = {
        "operationId": f"{service.rsplit('.', 1)[1]}_{method}",
        "tags": [service.rsplit(".", 1)[1]],
        "x-grpc-method": rule.rpc,
    }
    comment = comments.get(f"{service}.{method}", "")
    if comment:
        operation["summary"] = comment.split("\n", 1)[0].rstrip(".")
        operation["description"] = comment
    if rule.body == "*":
        operation["requestBody"] = _json_body(schemas.body(rule.request, top_bound))
    elif rule.body:
        operation["requestBody"] = _json_body(schemas.field(rule.body_field))
        parameters += _query_parameters(schemas, rule.request, top_bound | {rule.body})
    else:
        parameters += _query_parameters(schemas, rule.request, top_bound)
    if parameters:
        operation["parameters"] = parameters
    # google.api.HttpBody: the service answers the body itself (the JWKS is JSON).
    answer = {"type": "object"} if response.full_name == HTTP_BODY else schemas.ref(response)
    operation["responses"] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": answer}}},
        **{status: {"$ref": f"#/components/responses/{name}"} for status, (name, _) in ERRORS.items()},
    }
    if service == surface.IDENTITY_SERVICE and method in surface.IDENTITY_PUBLIC_METHODS:
        operation["security"] = []
    return operation


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _error_responses() -> dict[str, Any]:
    status = {"application/json": {"schema": {"$ref": f"#/components/schemas/{STATUS}"}}}
    return {name: {"description": meaning, "content": status} for name, meaning in ERRORS.values()}


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "google.rpc.Status: every REST error body.",
        "properties": {
            "code": {"type": "integer", "description": "The gRPC status code, e.g. 3 INVALID_ARGUMENT."},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"@type": {"type": "string"}},
                    "required": ["@type"],
                    "description": "google.rpc.ErrorInfo, BadRequest, RetryInfo, … as JSON with their @type.",
                },
            },
        },
        "required": ["code", "message"],
    }


def generate(descriptor_path: str | Path) -> dict[str, Any]:
    files, pool = load_descriptor_set(descriptor_path)
    comments = _comments(files)
    services = [name for names in surface.PUBLIC_SERVICES.values() for name in names]
    schemas = _Schemas(comments)
    paths: dict[str, dict[str, Any]] = {}
    for rule in build_rules(files, pool, services):
        service, method = rule.rpc.strip("/").split("/")
        method_descriptor = pool.FindServiceByName(service).methods_by_name[method]
        if method_descriptor.server_streaming:
            continue  # streams are for gRPC and grpc-web clients
        path, _ = _openapi_path(rule.path.template)
        paths.setdefault(path, {})[rule.http_method.lower()] = _operation(
            schemas, comments, rule, method_descriptor.output_type
        )
    schemas.components[STATUS] = _status_schema()
    tags = [
        {"name": name.rsplit(".", 1)[1], "description": comments.get(name, "")} for name in services if name in comments
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": "v1",
            "description": "Generated from the protobuf contracts (protos/). Bodies follow the proto3 JSON "
            "mapping: camelCase names, enums by name, 64-bit integers as strings, RFC 3339 times.",
        },
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": _error_responses(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--descriptor", required=True, help="FileDescriptorSet from `buf build`")
    parser.add_argument("--out", required=True, help="where to write the JSON document")
    args = parser.parse_args(argv)
    document = generate(args.descriptor)
    Path(args.out).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")

if __name__ == "__main__":
    main()
