"""Database roles: migrations run as the owner; each service connects as a login role of its own.

    owner (DATABASE_URL of `make migrate` / the migration job): owns every schema, runs Alembic
    <schema>_app (services/common/migrations.py): NOLOGIN, no BYPASSRLS, not the owner; every
        transaction of the service switches to it (SET LOCAL ROLE), so RLS applies
    openhr_<service>: LOGIN, NOINHERIT, no SUPERUSER / BYPASSRLS / CREATEROLE / CREATEDB, member of
        <schema>_app and of nothing else: the service's DATABASE_URL

So the service's connection has no privilege of its own: RESET ROLE leaves it with none, it
cannot SET ROLE to the owner, and nothing it runs bypasses RLS (tests/integration/
test_database_roles.py). `make run` creates the login roles in the embedded Postgres (trust
authentication on 127.0.0.1); in production run

    python -m deploy.db_roles identity profile enrichment messaging | psql "$OWNER_DATABASE_URL"

(passwords from DB_PASSWORD_<SERVICE>, stored SCRAM-hashed by Postgres) after the migrations and
give each service `postgresql://openhr_<service>:<password>@host/db?sslmode=verify-full`."""

from __future__ import annotations

import os
import re
import sys
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from services.common.migrations import app_role

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def login_role(service: str) -> str:
    if not _NAME.match(service):
        raise ValueError(f"invalid service name {service!r}")
    return f"openhr_{service}"


def provision_statements(service: str, password: str | None = None) -> list[sql.Composable]:
    """Creates (or tightens) `service`'s login role; its schema is its name."""
    role, member_of = sql.Identifier(login_role(service)), sql.Identifier(app_role(service))
    attributes = sql.SQL("LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION")
    secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password else sql.SQL("")
    name = sql.Literal(login_role(service))
    return [
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN CREATE ROLE {}; END IF; END $$"
        ).format(name, role),
        sql.SQL("ALTER ROLE {} {}{}").format(role, attributes, secret),
        sql.SQL("GRANT {} TO {}").format(member_of, role),
    ]


def provision(owner_url: str, services: list[str]) -> None:
    """Runs the statements as the owner (the local stack's superuser)."""
    with psycopg.connect(owner_url, autocommit=True) as connection:
        for service in services:
            for statement in provision_statements(service):
                connection.execute(statement)


def service_url(owner_url: str, service: str) -> str:
    """The owner's URL with the service's login role as user (local: trust, no password)."""
    parts = urlsplit(owner_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(login_role(service))}@{host}"))


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m deploy.db_roles SERVICE... (passwords from DB_PASSWORD_<SERVICE>)", file=sys.stderr)
        return 2
    for service in argv:
        password = os.environ.get(f"DB_PASSWORD_{service.upper()}")
        if not password:
            print(f"set DB_PASSWORD_{service.upper()}", file=sys.stderr)
            return 2
        for statement in provision_statements(service, password):
            print(statement.as_string(None) + ";")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
