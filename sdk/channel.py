"""A grpc channel that sends the caller's access token and a deadline with every call."""

from __future__ import annotations

import grpc


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str, timeout: float) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else self._timeout,
            metadata=[*(details.metadata or ()), *self._metadata],
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
            compression=details.compression,
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, **fields) -> None:
        for name, value in fields.items():
            setattr(self, name, value)


def authenticated_channel(target: str, token: str, *, secure: bool = False, timeout: float = 10.0) -> grpc.Channel:
    """`target` is the edge (Envoy, e.g. 127.0.0.1:8080) or a service; TLS when `secure`."""
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else grpc.insecure_channel(target)
    return grpc.intercept_channel(channel, _Bearer(token, timeout))
