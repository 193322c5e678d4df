"""Profile visibility for the matching product: every signed-in user may read a PUBLIC or
MATCHES_ONLY profile (the service shows strangers the limited view, services/profile/rules.py);
only matched users may endorse each other; a service rebuilding a read model may page every
discoverable profile, inside a transaction that declared it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op

from services.common.migrations import CALLER, app_role

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLE = app_role("profile")
DISCOVERY = "current_setting('app.discovery', true) = 'on'"
CONNECTED = (
    "EXISTS (SELECT 1 FROM profile.connections c "
    f"WHERE c.user_id = {CALLER} AND c.other_user_id = endorsements.owner_user_id)"
)


def upgrade() -> None:
    op.execute(
        f"""
        DROP POLICY profiles_read ON profile.profiles;
        CREATE POLICY profiles_read ON profile.profiles FOR SELECT TO {ROLE} USING (
          user_id = {CALLER}
          OR visibility = 'VISIBILITY_PUBLIC'
          OR (visibility = 'VISIBILITY_MATCHES_ONLY' AND {CALLER} IS NOT NULL)
          OR ({DISCOVERY} AND visibility <> 'VISIBILITY_PRIVATE')
        );

        DROP POLICY endorsements_insert ON profile.endorsements;
        CREATE POLICY endorsements_insert ON profile.endorsements FOR INSERT TO {ROLE} WITH CHECK (
          endorser_user_id = {CALLER} AND owner_user_id <> {CALLER}
          AND {CONNECTED}
          AND EXISTS (
            SELECT 1 FROM profile.skills s
            WHERE s.skill_id = endorsements.skill_id
              AND s.profile_id = endorsements.profile_id
              AND s.user_id = endorsements.owner_user_id)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP POLICY profiles_read ON profile.profiles;
        CREATE POLICY profiles_read ON profile.profiles FOR SELECT TO {ROLE} USING (
          user_id = {CALLER}
          OR visibility = 'VISIBILITY_PUBLIC'
          OR (visibility = 'VISIBILITY_MATCHES_ONLY' AND EXISTS (
                SELECT 1 FROM profile.connections c
                WHERE c.user_id = {CALLER} AND c.other_user_id = profiles.user_id))
        );
        DROP POLICY endorsements_insert ON profile.endorsements;
        CREATE POLICY endorsements_insert ON profile.endorsements FOR INSERT TO {ROLE} WITH CHECK (
          endorser_user_id = {CALLER} AND owner_user_id <> {CALLER}
          AND EXISTS (
            SELECT 1 FROM profile.skills s
            WHERE s.skill_id = endorsements.skill_id
              AND s.profile_id = endorsements.profile_id
              AND s.user_id = endorsements.owner_user_id)
        );
        """
    )
