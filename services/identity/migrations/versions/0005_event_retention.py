"""Published outbox rows and processed inbox keys older than OPENHR_EVENT_RETENTION are deleted
(services/common/retention.py): the app role may delete them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

from services.common.migrations import app_role, grant_event_retention

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    grant_event_retention("identity")


def downgrade() -> None:
    role = app_role("identity")
    op.execute(f'REVOKE DELETE ON "identity".outbox, "identity".inbox FROM "{role}"')
