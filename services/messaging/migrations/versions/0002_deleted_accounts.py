"""Postgres refuses a message into a conversation with a participant who deleted their account,
as it refuses one into a blocked conversation (services/messaging/chat.py checks first and
answers with a clear error; this holds whatever the servicer does).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

from services.common.migrations import CALLER, app_role

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = app_role("messaging")
NOBODY_DELETED = "NOT EXISTS (SELECT 1 FROM messaging.people p WHERE p.user_id = ANY (c.user_ids) AND p.deleted)"


def _messages_insert(extra: str) -> str:
    return f"""
        DROP POLICY messages_insert ON messaging.messages;
        CREATE POLICY messages_insert ON messaging.messages FOR INSERT TO {ROLE} WITH CHECK (
          sender_id = {CALLER} AND EXISTS (
            SELECT 1 FROM messaging.conversations c
            WHERE c.conversation_id = messages.conversation_id AND c.user_ids @> ARRAY[{CALLER}]
              AND c.blocked_by IS NULL{extra})
        );
        """


def upgrade() -> None:
    op.execute(_messages_insert(f" AND {NOBODY_DELETED}"))


def downgrade() -> None:
    op.execute(_messages_insert(""))
