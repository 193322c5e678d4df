"""The ExternalProcessor servicer Envoy's ext_proc filter streams REST request bodies to:
thin, it translates between ext_proc messages and edge.validation.rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import structlog
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import json_format, struct_pb2
from prometheus_client import Counter

from edge.validation.rules import Rules
from openhr.common.v1 import common_pb2
from services.common import errors
from services.common.errors import DomainError, FieldViolation
from services.common.field_paths import json_path

log = structlog.get_logger("validation")

CHECKED = Counter(
    "openhr_validation_bodies_total",
    "REST request bodies checked by the edge validator, by outcome.",
    ["outcome"],  # valid | rejected | unmatched (no binding: the transcoder answers 404)
)
QUERIES = Counter(
    "openhr_validation_queries_total",
    "REST query strings checked by the edge validator, by outcome.",
    ["outcome"],  # valid | rejected | unmatched (no binding: the transcoder answers 404)
)

# Answers that let a message through unchanged, for the phases Envoy may be configured to send.
_CONTINUE = {
    "request_headers": ext_proc.ProcessingResponse(request_headers=ext_proc.HeadersResponse()),
    "response_headers": ext_proc.ProcessingResponse(response_headers=ext_proc.HeadersResponse()),
    "request_body": ext_proc.ProcessingResponse(request_body=ext_proc.BodyResponse()),
    "response_body": ext_proc.ProcessingResponse(response_body=ext_proc.BodyResponse()),
    "request_trailers": ext_proc.ProcessingResponse(request_trailers=ext_proc.TrailersResponse()),
    "response_trailers": ext_proc.ProcessingResponse(response_trailers=ext_proc.TrailersResponse()),
}
_JSON = ext_proc.HeaderMutation(
    set_headers=[
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key="content-type", raw_value=b"application/json"))
    ]
)


def _json(error: DomainError) -> bytes:
    # Printed as the transcoder prints the services' errors (print_options in envoy.yaml.j2).
    printed = json_format.MessageToDict(error.to_status(), always_print_fields_with_no_presence=True)
    return json.dumps(printed, separators=(",", ":"), ensure_ascii=False).encode()


def status_json(violations: list[FieldViolation], what: str) -> bytes:
    """google.rpc.Status JSON as the services' own INVALID_ARGUMENT errors reach REST clients:
    code 3, a message naming the fields, ErrorInfo (reason ERROR_REASON_INVALID_FIELD) and a
    google.rpc.BadRequest with one field violation per field."""
    text = "; ".join(f"{v.field}: {v.description}" if v.field else v.description for v in violations)
    return _json(
        DomainError(
            f"{what}: {text}",
            grpc.StatusCode.INVALID_ARGUMENT,
            common_pb2.ERROR_REASON_INVALID_FIELD,
            list(violations),
        )
    )


# Dynamic metadata on every immediate answer: Envoy's local_reply_config then keeps its
# body as it is (envoy.yaml.j2: metadata_filter openhr.validation/rejected).
_REJECTED = struct_pb2.Struct()
_REJECTED.update({"openhr.validation": {"rejected": True}})


def _immediate(code: int, body: bytes, details: str) -> ext_proc.ProcessingResponse:
    return ext_proc.ProcessingResponse(
        immediate_response=ext_proc.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=code), headers=_JSON, body=body, details=details
        ),
        dynamic_metadata=_REJECTED,
    )


# The request_attributes of the ext_proc filter (envoy.yaml.j2), in this order.
METHOD = "request.method"
PATH = "request.path"
ORIGINAL_METHOD = "request.headers['x-envoy-original-method']"
ORIGINAL_PATH = "request.headers['x-envoy-original-path']"
ATTRIBUTES = (METHOD, PATH, ORIGINAL_PATH, ORIGINAL_METHOD)


def _attribute(request: ext_proc.ProcessingRequest, name: str) -> str:
    for values in request.attributes.values():  # keyed by the filter's name
        if name in values.fields:
            return values.fields[name].string_value
    return ""


class ExternalProcessorApi(external_processor_pb2_grpc.ExternalProcessorServicer):
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    async def Process(
        self, request_iterator: AsyncIterator[ext_proc.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ext_proc.ProcessingResponse]:
        # One stream per HTTP request; with Envoy's config (headers SKIP, body BUFFERED) it
        # carries exactly one message: the whole request body.
        async for request in request_iterator:
            yield self.answer(request)

    def answer(self, request: ext_proc.ProcessingRequest) -> ext_proc.ProcessingResponse:
        phase = request.WhichOneof("request")
        if phase == "request_headers":
            return self.answer_query(request.request_headers.headers)
        if phase != "request_body":
            return _CONTINUE[phase]
        # Envoy evaluates the attributes when it sends the body: the transcoder (after this
        # filter) has by then rewritten the request to POST /<service>/<method> and kept the
        # client's method and path in x-envoy-original-*.
        method, path = _attribute(request, METHOD), _attribute(request, PATH)
        if not method or not path:
            # Envoy's config lost request_attributes: fail closed, loudly.
            log.error("request without method/path attributes: check the ext_proc config")
            return _immediate(500, _json(errors.internal()), "request_validation_misconfigured")
        rule = self.rules.match(
            _attribute(request, ORIGINAL_METHOD) or method, _attribute(request, ORIGINAL_PATH) or path, rpc=path
        )
        if rule is None:
            CHECKED.labels("unmatched").inc()
            return _CONTINUE[phase]
        violations = self.rules.check(rule, request.request_body.body)
        if not violations:
            CHECKED.labels("valid").inc()
            return _CONTINUE[phase]
        CHECKED.labels("rejected").inc()
        log.info("body rejected", rpc=rule.rpc, fields=[v.field for v in violations])
        # REST callers read JSON names (the services' errors to them are renamed alike).
        named = [FieldViolation(json_path(rule.request, v.field), v.description) for v in violations]
        return _immediate(400, status_json(named, "invalid request body"), "request_body_invalid")

    def answer_query(self, headers: base_pb2.HeaderMap) -> ext_proc.ProcessingResponse:
        """The query string of a REST request (the query filter sends the headers of those that
        have one, before the transcoder): every parameter must name a field and fit its type.
        Parameters are named as the client wrote them."""
        found = {h.key: (h.raw_value.decode(errors="replace") or h.value) for h in headers.headers}
        path, _, query = found.get(":path", "").partition("?")
        rule = self.rules.match(found.get(":method", ""), path)
        if rule is None or not query:
            QUERIES.labels("unmatched" if rule is None else "valid").inc()
            return _CONTINUE["request_headers"]
        violations = self.rules.check_query(rule, query)
        QUERIES.labels("rejected" if violations else "valid").inc()
        if not violations:
            return _CONTINUE["request_headers"]
        log.info("query rejected", rpc=rule.rpc, parameters=[v.field for v in violations])
        return _immediate(400, status_json(violations, "invalid query string"), "request_query_invalid")
