"""python -m services.enrichment: runs the enrichment service until SIGTERM."""

from services.common.runner import serve
from services.enrichment.app import EnrichmentSettings, build

if __name__ == "__main__":
    serve("enrichment", EnrichmentSettings(), build)
