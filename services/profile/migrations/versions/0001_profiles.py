"""Profiles, skills, endorsements and the connections read model, with row-level security.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

from services.common.migrations import CALLER, app_role, create_app_role, create_outbox_and_inbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = app_role("profile")


def upgrade() -> None:
    create_app_role("profile")
    op.execute(
        f"""
        CREATE TABLE profile.profiles (
          profile_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          user_id uuid NOT NULL UNIQUE,
          role text NOT NULL DEFAULT 'ROLE_UNSPECIFIED',
          display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 80),
          headline text NOT NULL DEFAULT '' CHECK (char_length(headline) <= 140),
          summary text NOT NULL DEFAULT '' CHECK (char_length(summary) <= 4000),
          city text NOT NULL DEFAULT '' CHECK (char_length(city) <= 100),
          country_code text NOT NULL DEFAULT '' CHECK (country_code ~ '^([A-Z]{{2}})?$'),
          latitude double precision NOT NULL DEFAULT 0,
          longitude double precision NOT NULL DEFAULT 0,
          timezone text NOT NULL DEFAULT '',
          years_experience smallint NOT NULL DEFAULT 0 CHECK (years_experience BETWEEN 0 AND 70),
          looking_for text NOT NULL DEFAULT '' CHECK (char_length(looking_for) <= 1000),
          github_username text NOT NULL DEFAULT '',
          website_url text NOT NULL DEFAULT '',
          linkedin_url text NOT NULL DEFAULT '',
          avatar_url text NOT NULL DEFAULT '',
          visibility text NOT NULL DEFAULT 'VISIBILITY_PUBLIC',
          preferences jsonb NOT NULL DEFAULT '{{}}'::jsonb,
          completeness smallint NOT NULL DEFAULT 0,
          version bigint NOT NULL DEFAULT 1,
          request_id uuid,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE profile.skills (
          skill_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          profile_id uuid NOT NULL REFERENCES profile.profiles ON DELETE CASCADE,
          user_id uuid NOT NULL,
          skill_key text NOT NULL,
          name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 60),
          taxonomy_id text NOT NULL DEFAULT '',
          category text NOT NULL DEFAULT '',
          proficiency smallint NOT NULL CHECK (proficiency BETWEEN 1 AND 5),
          source text NOT NULL DEFAULT 'SKILL_SOURCE_MANUAL',
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          UNIQUE (profile_id, skill_key)
        );
        CREATE INDEX skills_user ON profile.skills (user_id);

        CREATE TABLE profile.endorsements (
          endorsement_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          profile_id uuid NOT NULL REFERENCES profile.profiles ON DELETE CASCADE,
          skill_id uuid NOT NULL REFERENCES profile.skills ON DELETE CASCADE,
          owner_user_id uuid NOT NULL,
          endorser_user_id uuid NOT NULL,
          note text NOT NULL DEFAULT '' CHECK (char_length(note) <= 280),
          created_at timestamptz NOT NULL DEFAULT now(),
          UNIQUE (skill_id, endorser_user_id),
          CHECK (owner_user_id <> endorser_user_id)
        );
        CREATE INDEX endorsements_profile ON profile.endorsements (profile_id);
        CREATE INDEX endorsements_endorser ON profile.endorsements (endorser_user_id);

        -- Pairs of matched users (from MatchCreated): who may see a MATCHES_ONLY profile.
        CREATE TABLE profile.connections (
          user_id uuid NOT NULL,
          other_user_id uuid NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (user_id, other_user_id)
        );

        GRANT SELECT, INSERT, UPDATE, DELETE ON profile.profiles, profile.skills, profile.endorsements TO {ROLE};
        GRANT SELECT, INSERT, DELETE ON profile.connections TO {ROLE};

        ALTER TABLE profile.profiles ENABLE ROW LEVEL SECURITY;
        ALTER TABLE profile.profiles FORCE ROW LEVEL SECURITY;
        ALTER TABLE profile.skills ENABLE ROW LEVEL SECURITY;
        ALTER TABLE profile.skills FORCE ROW LEVEL SECURITY;
        ALTER TABLE profile.endorsements ENABLE ROW LEVEL SECURITY;
        ALTER TABLE profile.endorsements FORCE ROW LEVEL SECURITY;
        ALTER TABLE profile.connections ENABLE ROW LEVEL SECURITY;
        ALTER TABLE profile.connections FORCE ROW LEVEL SECURITY;

        CREATE POLICY profiles_read ON profile.profiles FOR SELECT TO {ROLE} USING (
          user_id = {CALLER}
          OR visibility = 'VISIBILITY_PUBLIC'
          OR (visibility = 'VISIBILITY_MATCHES_ONLY' AND EXISTS (
                SELECT 1 FROM profile.connections c
                WHERE c.user_id = {CALLER} AND c.other_user_id = profiles.user_id))
        );
        CREATE POLICY profiles_insert ON profile.profiles FOR INSERT TO {ROLE} WITH CHECK (user_id = {CALLER});
        CREATE POLICY profiles_update ON profile.profiles FOR UPDATE TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        CREATE POLICY profiles_delete ON profile.profiles FOR DELETE TO {ROLE} USING (user_id = {CALLER});

        -- Skills and endorsements are visible exactly when their profile is.
        CREATE POLICY skills_read ON profile.skills FOR SELECT TO {ROLE} USING (
          EXISTS (SELECT 1 FROM profile.profiles p WHERE p.profile_id = skills.profile_id)
        );
        CREATE POLICY skills_write ON profile.skills FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});

        CREATE POLICY endorsements_read ON profile.endorsements FOR SELECT TO {ROLE} USING (
          endorser_user_id = {CALLER}
          OR EXISTS (SELECT 1 FROM profile.profiles p WHERE p.profile_id = endorsements.profile_id)
        );
        CREATE POLICY endorsements_insert ON profile.endorsements FOR INSERT TO {ROLE} WITH CHECK (
          endorser_user_id = {CALLER} AND owner_user_id <> {CALLER}
        );
        -- The endorser may withdraw; the owner may remove endorsements of their skills.
        CREATE POLICY endorsements_delete ON profile.endorsements FOR DELETE TO {ROLE} USING (
          endorser_user_id = {CALLER} OR owner_user_id = {CALLER}
        );

        CREATE POLICY connections_own ON profile.connections FOR ALL TO {ROLE}
          USING (user_id = {CALLER} OR other_user_id = {CALLER})
          WITH CHECK (user_id = {CALLER} OR other_user_id = {CALLER});
        """
    )
    create_outbox_and_inbox("profile")


def downgrade() -> None:
    op.execute("DROP SCHEMA profile CASCADE")
