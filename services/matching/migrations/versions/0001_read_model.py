"""Matching's schema: the candidate read model (profiles and their offer / seek vectors, fed by
events, rebuildable), decisions, mutual matches and blocks, with row-level security.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from alembic import op

from services.common.migrations import CALLER, app_role, create_app_role, create_outbox_and_inbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = app_role("matching")
# The served embedding model's dimensions (all-MiniLM-L6-v2): HNSW indexes need a fixed size.
DIMENSIONS = 384
REBUILDING = "current_setting('app.maintenance', true) = 'rebuild'"


def upgrade() -> None:
    create_app_role("matching")
    op.execute(
        f"""
        CREATE EXTENSION IF NOT EXISTS vector;

        -- One row per profile, from ProfileChanged (or the profile service's paged internal RPC
        -- when rebuilt). Only what ranking, filters and cards need; never coordinates.
        CREATE TABLE matching.candidates (
          user_id uuid PRIMARY KEY,
          profile_id uuid NOT NULL UNIQUE,
          profile_version bigint NOT NULL,
          discoverable boolean NOT NULL,
          role text NOT NULL,
          display_name text NOT NULL,
          headline text NOT NULL,
          avatar_url text NOT NULL,
          city text NOT NULL,
          country_code text NOT NULL,
          timezone text NOT NULL,
          -- [{{"name", "category", "proficiency"}}], strongest first.
          skills jsonb NOT NULL,
          -- Lower-cased skill names, for the skill keyword filter.
          skill_keys text[] NOT NULL,
          -- openhr.profile.v1.Preferences, serialized (ranking reads it for every candidate).
          preferences bytea NOT NULL,
          -- From preferences, for SQL filters.
          stages text[] NOT NULL,
          commitment text NOT NULL,
          work_modes text[] NOT NULL,
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX candidates_skill_keys ON matching.candidates USING gin (skill_keys);
        CREATE INDEX candidates_updated ON matching.candidates (updated_at DESC) WHERE discoverable;

        -- The newest offer / seek vectors of each profile, from ProfileEmbedded. Kept apart from
        -- candidates: a consumer group gives no order, so a vector may arrive before its profile.
        -- `discoverable` mirrors candidates (RLS reads it without a join per scanned row).
        CREATE TABLE matching.vectors (
          user_id uuid PRIMARY KEY,
          model_id text NOT NULL,
          profile_version bigint NOT NULL,
          discoverable boolean NOT NULL DEFAULT false,
          offer vector({DIMENSIONS}),
          seek vector({DIMENSIONS}),
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX vectors_offer ON matching.vectors USING hnsw (offer vector_cosine_ops);
        CREATE INDEX vectors_seek ON matching.vectors USING hnsw (seek vector_cosine_ops);

        -- Likes and passes; one per (actor, target): a decision is final.
        CREATE TABLE matching.decisions (
          actor_user_id uuid NOT NULL,
          target_user_id uuid NOT NULL,
          kind text NOT NULL CHECK (kind IN ('like', 'pass')),
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (actor_user_id, target_user_id),
          CHECK (actor_user_id <> target_user_id)
        );
        CREATE INDEX decisions_target ON matching.decisions (target_user_id);

        -- Mutual matches: one per pair (user_a < user_b), its id fixed by the pair.
        CREATE TABLE matching.matches (
          match_id uuid PRIMARY KEY,
          seq bigserial UNIQUE,
          user_a uuid NOT NULL,
          user_b uuid NOT NULL,
          score double precision NOT NULL,
          conversation_id text NOT NULL DEFAULT '',
          created_at timestamptz NOT NULL DEFAULT now(),
          UNIQUE (user_a, user_b),
          CHECK (user_a < user_b)
        );
        CREATE INDEX matches_b ON matching.matches (user_b);

        -- Blocks from messaging: the pair is never offered to each other again.
        CREATE TABLE matching.blocks (
          blocker_user_id uuid NOT NULL,
          blocked_user_id uuid NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (blocker_user_id, blocked_user_id)
        );
        CREATE INDEX blocks_blocked ON matching.blocks (blocked_user_id);

        GRANT SELECT, INSERT, UPDATE, DELETE ON matching.candidates, matching.vectors, matching.decisions,
          matching.matches, matching.blocks TO {ROLE};
        GRANT USAGE ON SEQUENCE matching.matches_seq_seq TO {ROLE};

        ALTER TABLE matching.candidates ENABLE ROW LEVEL SECURITY;
        ALTER TABLE matching.candidates FORCE ROW LEVEL SECURITY;
        ALTER TABLE matching.vectors ENABLE ROW LEVEL SECURITY;
        ALTER TABLE matching.vectors FORCE ROW LEVEL SECURITY;
        ALTER TABLE matching.decisions ENABLE ROW LEVEL SECURITY;
        ALTER TABLE matching.decisions FORCE ROW LEVEL SECURITY;
        ALTER TABLE matching.matches ENABLE ROW LEVEL SECURITY;
        ALTER TABLE matching.matches FORCE ROW LEVEL SECURITY;
        ALTER TABLE matching.blocks ENABLE ROW LEVEL SECURITY;
        ALTER TABLE matching.blocks FORCE ROW LEVEL SECURITY;

        -- Everyone sees discoverable candidates; the owner also their own hidden row. Only the
        -- owner's events (transactions as that user) write a row.
        CREATE POLICY candidates_read ON matching.candidates FOR SELECT TO {ROLE}
          USING (discoverable OR user_id = {CALLER});
        CREATE POLICY candidates_write ON matching.candidates FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        CREATE POLICY vectors_read ON matching.vectors FOR SELECT TO {ROLE}
          USING (discoverable OR user_id = {CALLER});
        CREATE POLICY vectors_write ON matching.vectors FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});

        -- Rebuilding the read model (RebuildReadModel, services/matching/readmodel.py) writes
        -- every user's row in bulk: only inside a transaction that declared it.
        CREATE POLICY candidates_rebuild ON matching.candidates FOR ALL TO {ROLE}
          USING ({REBUILDING}) WITH CHECK ({REBUILDING});
        CREATE POLICY vectors_rebuild ON matching.vectors FOR ALL TO {ROLE}
          USING ({REBUILDING}) WITH CHECK ({REBUILDING});

        -- One's own decisions, and likes of oneself (a mutual like needs to see the other's);
        -- never who passed on one.
        CREATE POLICY decisions_read ON matching.decisions FOR SELECT TO {ROLE}
          USING (actor_user_id = {CALLER} OR (target_user_id = {CALLER} AND kind = 'like'));
        CREATE POLICY decisions_insert ON matching.decisions FOR INSERT TO {ROLE}
          WITH CHECK (actor_user_id = {CALLER});
        -- Erasure of a user removes decisions by and about them.
        CREATE POLICY decisions_delete ON matching.decisions FOR DELETE TO {ROLE}
          USING (actor_user_id = {CALLER} OR target_user_id = {CALLER});

        CREATE POLICY matches_member ON matching.matches FOR ALL TO {ROLE}
          USING ({CALLER} IN (user_a, user_b)) WITH CHECK ({CALLER} IN (user_a, user_b));
        CREATE POLICY blocks_member ON matching.blocks FOR ALL TO {ROLE}
          USING ({CALLER} IN (blocker_user_id, blocked_user_id))
          WITH CHECK ({CALLER} IN (blocker_user_id, blocked_user_id));
        """
    )
    create_outbox_and_inbox("matching")


def downgrade() -> None:
    op.execute("DROP SCHEMA matching CASCADE")
