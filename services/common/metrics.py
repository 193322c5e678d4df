"""Prometheus metrics, named as go-grpc-prometheus names them so stock dashboards work."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", ["grpc_service", "grpc_method", "grpc_type"]
)
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
)
RPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its end (whole stream for streaming RPCs).",
    ["grpc_service", "grpc_method", "grpc_type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
OUTBOX_PENDING = Gauge("openhr_outbox_pending_events", "Outbox rows not yet published to Redis.")
EVENTS_PUBLISHED = Counter("openhr_events_published_total", "Domain events published.", ["topic"])
EVENTS_CONSUMED = Counter(
    "openhr_events_consumed_total", "Domain events handled by a consumer.", ["stream", "group", "outcome"]
)
EVENTS_REJECTED = Counter(
    "openhr_events_rejected_total",
    "Stream entries never applied: unsigned, forged, or undecodable (services/common/event_auth.py).",
    ["stream", "reason"],
)
DEPENDENCY_UP = Gauge("openhr_dependency_up", "1 when the dependency answered its last check.", ["dependency"])


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Starts the /metrics endpoint; port 0 disables it."""
    if port:
        start_http_server(port, addr=host)
