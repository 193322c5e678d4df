"""SQL of the enrichment schema (asyncpg, inside transactions opened with the caller's id)."""

from __future__ import annotations

SCHEMA = "enrichment"
