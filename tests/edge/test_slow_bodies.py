"""Slow and large request bodies are refused quickly at the edge (edge/envoy/envoy.yaml.j2:
HCM request_timeout; the transcoder's buffer limit): a body trickled in, or one of 2 MB
announced with `Expect: 100-continue` and sent slowly, once held an Envoy stream for the 300 s
stream idle timeout. Raw loopback sockets play the client; every wait is bounded by a socket
timeout."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from deploy.local.ephemeral import Mesh
from edge.envoy.render import render
from tests.envoy_process import RunningEnvoy, running_envoy

pytestmark = pytest.mark.timeout(60)
# Short enough to keep the suite quick, long enough that a starved machine still reads a 2 MB body
# (and asks the rate limit) within it: what refuses that body must be its size, not the clock.
REQUEST_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def edge(mesh: Mesh, tmp_path_factory) -> RunningEnvoy:
    """A second edge in front of the session mesh's services, with a short request timeout."""
    with running_envoy(
        mesh.config.ports,
        tmp_path_factory.mktemp("slow"),
        service_keys=mesh.config.service_keys,
        request_timeout=f"{REQUEST_TIMEOUT}s",
    ) as running:
        running.wait_until(running.live)
        yield running


def _headers(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_a_trickled_body_is_cut_off_after_the_request_timeout(edge: RunningEnvoy) -> None:
    """One byte every 0.2 s keeps the stream from idling; the request timeout ends it."""
    body = b'{"email": "slow@example.com", "password": "' + b"a" * 100 + b'"}'
    client = socket.create_connection(("127.0.0.1", edge.port), timeout=15)
    answered = threading.Event()

    def trickle() -> None:
        with client.makefile("wb", buffering=0) as out:
            out.write(_headers("/v1/auth/login", len(body)))
            for byte in body[:-1]:
                if answered.wait(0.2):
                    return
                try:
                    out.write(bytes([byte]))
                except OSError:
                    return

    sender = threading.Thread(target=trickle, daemon=True)
    started = time.monotonic()
    sender.start()
    try:
        answer = client.recv(4096)
    finally:
        answered.set()
        client.close()
        sender.join(5)
    elapsed = time.monotonic() - started
    assert _status(answer) == 408, answer[:300]
    assert elapsed < REQUEST_TIMEOUT + 8, elapsed


def test_a_body_over_the_limit_is_refused_quickly(edge: RunningEnvoy) -> None:
    """A sign-in body of 2 MB announced with `Expect: 100-continue`: Envoy answers 413 once
    the transcoder's 1 MiB is passed, JSON like every error. (A JSON body: one that is none is
    refused as such, 400, by the body validator in front of the transcoder.)"""
    size = 2_000_000
    body = b'{"email": "' + b"a" * (size - 14) + b'"}'
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as client:
        client.sendall(_headers("/v1/auth/login", len(body), "Expect: 100-continue\r\n"))
        assert _status(client.recv(4096)) == 100
        answer = b""
        with contextlib.suppress(OSError):  # Envoy may close before the whole body is sent
            client.sendall(body)
        answer = client.recv(4096)
    assert _status(answer) == 413, answer[:300]
    assert b'"code":3' in answer


def test_an_endless_chunked_body_ends_within_the_request_timeout(edge: RunningEnvoy) -> None:
    chunk = b"a" * 16384
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", edge.port), timeout=REQUEST_TIMEOUT + 8) as client:
        client.sendall(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # fills the socket buffers, then blocks until Envoy answers
            for _ in range(1000):
                client.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = client.recv(4096)
    assert _status(answer) in (408, 413), answer[:300]
    assert time.monotonic() - started < REQUEST_TIMEOUT + 8


def test_the_request_timeout_is_in_the_rendered_config() -> None:
    config = yaml.safe_load(
        render(
            listen_port=1,
            admin_port=2,
            descriptor_path=str(Path(__file__).resolve().parents[2] / "gen" / "openhr.binpb"),
            clusters=[{"name": "profile", "host": "127.0.0.1", "port": 3}],
        )
    )
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert (hcm["request_timeout"], hcm["request_headers_timeout"]) == ("15s", "10s")
