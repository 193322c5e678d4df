"""Expired secrets can be purged (services/identity/retention.py).

Refresh tokens, one-time link tokens and OAuth states are kept past their expiry for a grace
period, then any identity transaction may delete them, whoever they belonged to:

- refresh tokens 30 days after expiry: until then a replayed, long-rotated token is still
  recognised and revokes its family (reuse detection), not merely refused as unknown;
- one-time tokens 1 day after expiry (OAuth states already could be: 0002).

Rows must be visible to be deleted by a filtered DELETE, so each purge policy comes with a read
policy over the same expired rows (hashes of dead secrets and a user id, nothing more).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

from services.common.migrations import app_role

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLE = app_role("identity")
REFRESH_GRACE = "30 days"
ONE_TIME_GRACE = "1 day"


def _purgeable(table: str, grace: str) -> str:
    name = table.split(".")[1]
    expired = f"expires_at < now() - interval '{grace}'"
    return f"""
        CREATE POLICY {name}_read_expired ON {table} FOR SELECT TO {ROLE} USING ({expired});
        CREATE POLICY {name}_purge ON {table} FOR DELETE TO {ROLE} USING ({expired});
    """


def upgrade() -> None:
    op.execute(
        f"""
        GRANT DELETE ON identity.refresh_tokens TO {ROLE};
        CREATE INDEX refresh_tokens_expiry ON identity.refresh_tokens (expires_at);
        CREATE INDEX one_time_tokens_expiry ON identity.one_time_tokens (expires_at);
        {_purgeable("identity.refresh_tokens", REFRESH_GRACE)}
        {_purgeable("identity.one_time_tokens", ONE_TIME_GRACE)}
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP POLICY one_time_tokens_purge ON identity.one_time_tokens;
        DROP POLICY one_time_tokens_read_expired ON identity.one_time_tokens;
        DROP POLICY refresh_tokens_purge ON identity.refresh_tokens;
        DROP POLICY refresh_tokens_read_expired ON identity.refresh_tokens;
        DROP INDEX identity.one_time_tokens_expiry;
        DROP INDEX identity.refresh_tokens_expiry;
        REVOKE DELETE ON identity.refresh_tokens FROM {ROLE};
        """
    )
