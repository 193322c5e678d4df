"""Migrates every service schema to head against DATABASE_URL: the Kubernetes migrations Job.

    python -m deploy.migrate              # every service that has a migrations/ folder
    python -m deploy.migrate profile      # only these
    python -m deploy.migrate --wait 600   # wait (at most 600 s) until every schema is at head

The waiting form is the init container of every pod with a schema (deploy/k8s components/
needs-schema): a new version's pods start only after its migrations ran.

Each service keeps its own Alembic history in its own schema (services/<name>/migrations);
a service added under services/ is migrated without touching this file. `make run` and the test
meshes migrate through deploy/local/stack.py instead (they start the embedded Postgres first)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from services.common.migrations import sync_url, upgrade_to_head
from services.common.settings import REPO_ROOT, ServiceSettings


def migrated_services(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Service name -> its folder, for every service with an Alembic history."""
    return {
        path.parent.parent.name: path.parent.parent
        for path in sorted(root.glob("services/*/migrations/env.py"))
        if path.parent.parent.name != "common"
    }


def pending(services: dict[str, Path], database_url: str) -> list[str]:
    """The services whose schema is not at the head of their migrations (or unreachable)."""
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    behind = []
    try:
        with engine.connect() as connection:
            for name, directory in services.items():
                config = Config()
                config.set_main_option("script_location", str(directory / "migrations"))
                heads = set(ScriptDirectory.from_config(config).get_heads())
                context = MigrationContext.configure(connection, opts={"version_table_schema": name})
                if set(context.get_current_heads()) != heads:
                    behind.append(name)
    finally:
        engine.dispose()
    return behind


def wait_for_heads(services: dict[str, Path], database_url: str, timeout: float, every: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            behind = pending(services, database_url)
        except Exception as exc:  # the database not reachable yet: keep waiting
            behind = [f"database unreachable ({type(exc).__name__})"]
        if not behind:
            return True
        if time.monotonic() >= deadline:
            print(f"not migrated after {timeout:.0f} s: {', '.join(behind)}", file=sys.stderr, flush=True)
            return False
        print(f"waiting for migrations: {', '.join(behind)}", flush=True)
        time.sleep(every)


def main(argv: list[str] | None = None) -> int:
    services = migrated_services()
    parser = argparse.ArgumentParser(prog="python -m deploy.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="*", help=f"default: all ({', '.join(services)})")
    parser.add_argument("--wait", type=float, metavar="SECONDS", help="migrate nothing: wait until all are at head")
    args = parser.parse_args(argv)
    unknown = set(args.service) - set(services)
    if unknown:
        parser.error(f"no migrations for {', '.join(sorted(unknown))}; known: {', '.join(services)}")
    database_url = ServiceSettings().database_url
    chosen = {name: services[name] for name in args.service} if args.service else services
    if args.wait is not None:
        return 0 if wait_for_heads(chosen, database_url, args.wait) else 1
    for name, directory in chosen.items():
        print(f"migrating {name}", flush=True)
        upgrade_to_head(directory, database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
