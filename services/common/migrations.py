"""Alembic plumbing shared by every service: one schema per service, its version table
inside that schema, and the DDL that every service schema has (app role, outbox, inbox).

A service's `migrations/env.py` is one call: `run_migrations("profile")`."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import create_engine, pool

from services.common.db import app_role
from services.common.settings import ServiceSettings

# The caller of the current transaction, as RLS policies read it (services/common/db.py sets it).
CALLER = "NULLIF(current_setting('app.user_id', true), '')::uuid"


def sync_url(database_url: str) -> str:
    """DATABASE_URL in the form SQLAlchemy's psycopg dialect wants."""
    return "postgresql+psycopg://" + database_url.split("://", 1)[1]


def run_migrations(schema: str) -> None:
    """The body of env.py: online migrations against DATABASE_URL, on psycopg (scripts hold
    several statements per execute, which asyncpg's prepared statements refuse)."""
    url = context.config.get_main_option("sqlalchemy.url") or sync_url(ServiceSettings().database_url)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        context.configure(connection=connection, version_table_schema=schema, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def upgrade_to_head(service_dir: Path, database_url: str | None = None) -> None:
    """Runs a service's migrations programmatically (local stack, tests)."""
    config = Config()
    config.set_main_option("script_location", str(service_dir / "migrations"))
    if database_url:
        config.set_main_option("sqlalchemy.url", sync_url(database_url))
    command.upgrade(config, "head")


def create_app_role(schema: str) -> None:
    """The role each transaction switches to: NOLOGIN, not owner, not superuser, no BYPASSRLS."""
    role = app_role(schema)
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
          END IF;
        END $$;
        GRANT "{role}" TO CURRENT_USER;
        GRANT USAGE ON SCHEMA "{schema}" TO "{role}";
        """
    )


def create_outbox_and_inbox(schema: str) -> None:
    """The outbox the relay publishes from, and the inbox consumers deduplicate with."""
    role = app_role(schema)
    op.execute(
        f"""
        CREATE TABLE "{schema}".outbox (
          id bigserial PRIMARY KEY,
          event_id uuid NOT NULL UNIQUE,
          topic text NOT NULL,
          payload bytea NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          published_at timestamptz
        );
        CREATE INDEX outbox_unpublished ON "{schema}".outbox (id) WHERE published_at IS NULL;
        GRANT SELECT, INSERT, UPDATE, DELETE ON "{schema}".outbox TO "{role}";
        GRANT USAGE ON SEQUENCE "{schema}".outbox_id_seq TO "{role}";
        CREATE TABLE "{schema}".inbox (
          event_id uuid PRIMARY KEY,
          processed_at timestamptz NOT NULL DEFAULT now()
        );
        GRANT SELECT, INSERT, DELETE ON "{schema}".inbox TO "{role}";
        """
    )


def grant_event_retention(schema: str) -> None:
    """For schemas made before retention: the app role may delete old outbox and inbox rows."""
    role = app_role(schema)
    op.execute(f'GRANT DELETE ON "{schema}".outbox, "{schema}".inbox TO "{role}"')
