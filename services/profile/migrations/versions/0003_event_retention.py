"""Published outbox rows and processed inbox keys older than OPENHR_EVENT_RETENTION are deleted
(services/common/retention.py): the app role may delete them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

from services.common.migrations import app_role, grant_event_retention

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    grant_event_retention("profile")


def downgrade() -> None:
    role = app_role("profile")
    op.execute(f'REVOKE DELETE ON "profile".outbox, "profile".inbox FROM "{role}"')
