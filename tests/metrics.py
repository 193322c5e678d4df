"""A sample of a mesh service's Prometheus metrics (its `/metrics` port), for tests that count
exactly what one call did: read it before and after, assert the difference."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.ephemeral import Mesh


async def sample(mesh: Mesh, service: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include these (0 when there is none yet):
    with every label given, one series' value."""
    return await scrape(mesh.config.metrics_ports[service], name, **labels)


async def scrape(port: int, name: str, **labels: str) -> float:
    """`sample` from the metrics port of any process (e.g. a second replica on its own ports)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    return sum(
        found.value
        for family in text_string_to_metric_families(response.text)
        for found in family.samples
        if found.name == name and labels.items() <= found.labels.items()
    )
