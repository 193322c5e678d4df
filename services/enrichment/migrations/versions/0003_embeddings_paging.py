"""A service rebuilding a read model (matching) may page every stored profile vector, inside a
transaction that declared it (services/enrichment/store.py enter_paging); users still see only
their own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

from services.common.migrations import app_role

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLE = app_role("enrichment")


def upgrade() -> None:
    op.execute(
        f"""
        CREATE POLICY profile_vectors_paging ON enrichment.profile_vectors FOR SELECT TO {ROLE}
          USING (current_setting('app.paging', true) = 'on');
        """
    )


def downgrade() -> None:
    op.execute("DROP POLICY profile_vectors_paging ON enrichment.profile_vectors")
