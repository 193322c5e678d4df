"""OpenTelemetry tracing: spans for every incoming and outgoing RPC when an OTLP endpoint
is configured (OTEL_EXPORTER_OTLP_ENDPOINT); nothing is instrumented otherwise, so the hot
path pays nothing by default."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def configure_tracing(service: str, otlp_endpoint: str) -> None:
    """Call before creating servers and channels: the grpc instrumentors patch their factories."""
    if not otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer

    provider = TracerProvider(resource=Resource.create({"service.name": f"openhr-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()
