"""The entry point every service's __main__ calls."""

from __future__ import annotations

from collections.abc import Callable

import uvloop

from services.common.logging import configure_logging
from services.common.server import Service, ServiceSpec
from services.common.settings import ServiceSettings
from services.common.tracing import configure_tracing


async def run(name: str, settings: ServiceSettings, build: Callable[[ServiceSettings], ServiceSpec]) -> None:
    # Tracing first: its instrumentors patch channel and server factories that build() uses.
    configure_logging(name, settings.log_level)
    configure_tracing(name, settings.otlp_endpoint)
    await Service(build(settings), settings).serve_until_signal()


def serve(name: str, settings: ServiceSettings, build: Callable[[ServiceSettings], ServiceSpec]) -> None:
    """Runs the service on uvloop until SIGTERM (measured in bench/: +6 % GetProfile throughput)."""
    uvloop.run(run(name, settings, build))
