"""Profile embeddings: the embedded text of each profile at its newest version, and its
offer / seek vectors per model, with row-level security.

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

ROLE = app_role("enrichment")


def upgrade() -> None:
    create_app_role("enrichment")
    op.execute(
        f"""
        CREATE EXTENSION IF NOT EXISTS vector;

        -- What was embedded for each profile, at the newest profile version seen (events
        -- arrive out of order: older versions are dropped). The texts are what a model change
        -- re-embeds from.
        CREATE TABLE enrichment.profile_texts (
          user_id uuid PRIMARY KEY,
          profile_id uuid NOT NULL,
          profile_version bigint NOT NULL,
          offer_text text NOT NULL,
          seek_text text NOT NULL,
          updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- One vector per profile, kind and model: during a model change the old model's rows
        -- keep serving until the new model's exist. Vectors of different models are never
        -- compared (model and dimensions travel with every vector).
        CREATE TABLE enrichment.profile_vectors (
          user_id uuid NOT NULL REFERENCES enrichment.profile_texts ON DELETE CASCADE,
          kind text NOT NULL CHECK (kind IN ('offer', 'seek')),
          model_id text NOT NULL,
          dimensions integer NOT NULL CHECK (dimensions > 0),
          embedding vector NOT NULL CHECK (vector_dims(embedding) = dimensions),
          profile_version bigint NOT NULL,
          updated_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (user_id, model_id, kind)
        );
        CREATE INDEX profile_vectors_model ON enrichment.profile_vectors (model_id);

        GRANT SELECT, INSERT, UPDATE, DELETE ON enrichment.profile_texts, enrichment.profile_vectors TO {ROLE};
        ALTER TABLE enrichment.profile_texts ENABLE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.profile_texts FORCE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.profile_vectors ENABLE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.profile_vectors FORCE ROW LEVEL SECURITY;
        CREATE POLICY profile_texts_own ON enrichment.profile_texts FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        CREATE POLICY profile_vectors_own ON enrichment.profile_vectors FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});

        -- The re-embedding after a model change works user by user, each in a transaction as
        -- that user; finding who is due needs to see every user. This function answers user
        -- ids only, and only the schema owner's policy lets it read across users.
        CREATE POLICY profile_texts_owner ON enrichment.profile_texts FOR SELECT TO CURRENT_USER USING (true);
        CREATE POLICY profile_vectors_owner ON enrichment.profile_vectors FOR SELECT TO CURRENT_USER USING (true);
        CREATE FUNCTION enrichment.profiles_due(model text, max_rows integer) RETURNS SETOF uuid
          LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            SELECT t.user_id FROM enrichment.profile_texts t
            WHERE NOT EXISTS (
              SELECT 1 FROM enrichment.profile_vectors v
              WHERE v.user_id = t.user_id AND v.model_id = model AND v.profile_version = t.profile_version)
            ORDER BY t.user_id LIMIT max_rows
          $$;
        REVOKE ALL ON FUNCTION enrichment.profiles_due(text, integer) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION enrichment.profiles_due(text, integer) TO {ROLE};
        """
    )
    create_outbox_and_inbox("enrichment")


def downgrade() -> None:
    op.execute("DROP SCHEMA enrichment CASCADE")
