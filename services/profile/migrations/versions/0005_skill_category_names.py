"""A profile skill's category carries the contract's SkillCategory name ("SKILL_CATEGORY_ENGINEERING"),
the representation enrichment answers, instead of the taxonomy's short id ("engineering").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _every_row(statement: str) -> None:
    """Runs statement on every user's skills: the table forces RLS even on its owner (the migrator),
    whom no policy admits, so the force is lifted for this transaction's statement only."""
    op.execute("ALTER TABLE profile.skills NO FORCE ROW LEVEL SECURITY")
    op.execute(statement)
    op.execute("ALTER TABLE profile.skills FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    _every_row(
        "UPDATE profile.skills SET category = 'SKILL_CATEGORY_' || upper(category)"
        " WHERE category <> '' AND category NOT LIKE 'SKILL\\_CATEGORY\\_%'"
    )


def downgrade() -> None:
    _every_row(
        "UPDATE profile.skills SET category = lower(substr(category, length('SKILL_CATEGORY_') + 1))"
        " WHERE category LIKE 'SKILL\\_CATEGORY\\_%'"
    )
