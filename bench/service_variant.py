"""The profile service with one change applied, to measure what a suggested change would buy before anyone
edits services/: `python -m bench.service_variant <variant>[+<variant>...]` runs it like
`python -m services.profile` (same settings from the environment, same runtime kit), with:

  as-is         nothing changed: started the way services/profile/__main__.py starts it (the control)
  no-rpc-log    OPENHR_LOG_LEVEL=WARNING, i.e. no JSON log line per RPC (set by bench/variants.py)
  uvloop        the event loop is uvloop (the services' default since commit d967fb0)
  asyncio-loop  the event loop is asyncio's default (what uvloop buys, measured backwards)
  canned      GetProfile answers the profile it read on its first call: the gRPC server, interceptor
              (token, metrics, log line) and serialization only, no database; an upper bound, not a proposal

Only GetProfile or the process setup changes; every other RPC keeps the service's code.

History: before commit 82a5550 this module also measured SQLAlchemy-free variants (plain asyncpg, one
query, no pool pre-ping, AsyncConnection) and a token cache; those changes are now the service's code
(see bench/results/get_profile_variants_sqlalchemy.md for the figures that motivated them)."""

from __future__ import annotations

import asyncio
import sys

from services.profile import api

VARIANTS = ("as-is", "no-rpc-log", "uvloop", "asyncio-loop", "canned")


def apply(variants: list[str]) -> None:
    """Patches the service before build() wires it."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")

    if "canned" in variants:
        original_get = api.ProfileApi.GetProfile
        cache: dict[str, object] = {}

        async def get_profile_canned(self, request, context):
            if "response" not in cache:
                cache["response"] = await original_get(self, request, context)
            return cache["response"]

        api.ProfileApi.GetProfile = get_profile_canned


def main(argv: list[str]) -> None:
    variants = [v for arg in argv for v in arg.split("+") if v]
    from services.common import runner
    from services.profile.app import ProfileSettings, build

    apply(variants)
    settings = ProfileSettings()
    if "uvloop" in variants:
        import uvloop

        uvloop.run(runner.run("profile", settings, build))
    elif "asyncio-loop" in variants or not hasattr(runner, "serve"):
        asyncio.run(runner.run("profile", settings, build))
    else:
        runner.serve("profile", settings, build)  # as services/profile/__main__.py does


if __name__ == "__main__":
    main(sys.argv[1:] or ["as-is"])
