"""The interceptor's line per RPC (services/common/interceptors.py) at the default level, INFO:
a quick success writes none, a slow one and a failure write theirs with the request id."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import structlog
from structlog.testing import LogCapture

from services.common import errors, interceptors

SERVICE = "test.v1.Probe"
OK, FAIL = f"/{SERVICE}/Ok", f"/{SERVICE}/Fail"


async def _ok(request: bytes, context) -> bytes:
    return b"ok"


async def _fail(request: bytes, context) -> bytes:
    raise errors.not_found("probe")


@pytest.fixture
def lines() -> Iterator[list[dict]]:
    """What the interceptor logs, filtered at INFO like a service with OPENHR_LOG_LEVEL unset."""
    captured = LogCapture()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, captured],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    try:
        yield captured.entries
    finally:
        structlog.reset_defaults()


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(
        interceptors=[interceptors.ServerInterceptor(None, public_methods=frozenset({OK, FAIL}))],
        options=[("grpc.so_reuseport", 0)],
    )
    handlers = {
        "Ok": grpc.unary_unary_rpc_method_handler(_ok),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


def _call(channel: grpc.aio.Channel, method: str, request_id: str):
    return channel.unary_unary(method)(b"", metadata=(("x-request-id", request_id),), timeout=10)


def _rpc_lines(lines: list[dict], request_id: str) -> list[dict]:
    return [line for line in lines if line.get("event") == "rpc" and line.get("request_id") == request_id]


async def test_a_quick_success_writes_no_line_at_info(lines: list[dict], channel: grpc.aio.Channel) -> None:
    assert await _call(channel, OK, "quick-1") == b"ok"
    assert _rpc_lines(lines, "quick-1") == []


async def test_a_slow_success_and_a_failure_are_logged_with_their_request_id(
    lines: list[dict], channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _call(channel, FAIL, "failed-1")
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    (line,) = _rpc_lines(lines, "failed-1")
    assert (line["log_level"], line["code"], line["rpc"]) == ("warning", "NOT_FOUND", FAIL)

    monkeypatch.setattr(interceptors, "SLOW_RPC_SECONDS", 0.0)  # every success counts as slow
    assert await _call(channel, OK, "slow-1") == b"ok"
    (line,) = _rpc_lines(lines, "slow-1")
    assert (line["log_level"], line["code"], line["rpc"]) == ("info", "OK", OK)
    assert line["duration_ms"] >= 0
