"""python -m services.enrichment: runs the enrichment service until SIGTERM."""

import asyncio

from services.common.runner import run
from services.enrichment.app import EnrichmentSettings, build

if __name__ == "__main__":
    asyncio.run(run("enrichment", EnrichmentSettings(), build))
