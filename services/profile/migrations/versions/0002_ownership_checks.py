"""RLS: a skill can only be written onto the caller's own profile, and an endorsement only
of a skill the caller can see, with profile, skill and owner agreeing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

from services.common.migrations import CALLER, app_role

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = app_role("profile")
OWN_PROFILE = (
    f"EXISTS (SELECT 1 FROM profile.profiles p WHERE p.profile_id = skills.profile_id AND p.user_id = {CALLER})"
)


def upgrade() -> None:
    op.execute(
        f"""
        DROP POLICY skills_write ON profile.skills;
        CREATE POLICY skills_insert ON profile.skills FOR INSERT TO {ROLE}
          WITH CHECK (user_id = {CALLER} AND {OWN_PROFILE});
        CREATE POLICY skills_update ON profile.skills FOR UPDATE TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER} AND {OWN_PROFILE});
        CREATE POLICY skills_delete ON profile.skills FOR DELETE TO {ROLE} USING (user_id = {CALLER});

        DROP POLICY endorsements_insert ON profile.endorsements;
        -- The skill must be visible to the endorser (skills_read) and belong to the named
        -- profile and owner.
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


def downgrade() -> None:
    op.execute(
        f"""
        DROP POLICY skills_insert ON profile.skills;
        DROP POLICY skills_update ON profile.skills;
        DROP POLICY skills_delete ON profile.skills;
        CREATE POLICY skills_write ON profile.skills FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        DROP POLICY endorsements_insert ON profile.endorsements;
        CREATE POLICY endorsements_insert ON profile.endorsements FOR INSERT TO {ROLE} WITH CHECK (
          endorser_user_id = {CALLER} AND owner_user_id <> {CALLER}
        );
        """
    )
