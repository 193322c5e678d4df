"""Enrichment jobs (GitHub import, résumé parsing, applying accepted skills), the skill
suggestions they produce, and the GitHub data an import read, with row-level security.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from alembic import op

from services.common.migrations import CALLER, app_role

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = app_role("enrichment")


def upgrade() -> None:
    op.execute(
        f"""
        -- A durable job: queued -> running (leased by one worker) -> succeeded | failed. A worker
        -- that dies leaves an expired lease behind and another worker takes the job over; every
        -- write of a running job names its lease owner, so a worker that lost its lease
        -- changes nothing (never two runs at once).
        CREATE TABLE enrichment.jobs (
          job_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          user_id uuid NOT NULL,
          kind text NOT NULL CHECK (kind IN ('github', 'resume', 'apply')),
          request_id text,
          state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
          progress integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
          stage text NOT NULL DEFAULT '',
          github_login text NOT NULL DEFAULT '',
          -- The résumé while its job is not finished; erased when it ends, whatever the outcome.
          document bytea,
          result jsonb,
          failure_reason text NOT NULL DEFAULT '',
          error_message text NOT NULL DEFAULT '',
          attempts integer NOT NULL DEFAULT 0,
          run_after timestamptz NOT NULL DEFAULT now(),
          lease_owner text,
          lease_expires_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          UNIQUE (user_id, request_id)
        );
        CREATE INDEX jobs_due ON enrichment.jobs (run_after) WHERE state IN ('queued', 'running');
        CREATE INDEX jobs_user ON enrichment.jobs (user_id, created_at DESC, job_id DESC);

        -- One suggestion per user, source and skill: a new import refreshes it (a rejected one
        -- stays rejected, an applied one applied) instead of adding another.
        CREATE TABLE enrichment.suggestions (
          suggestion_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          user_id uuid NOT NULL,
          source text NOT NULL CHECK (source IN ('github', 'resume')),
          skill_key text NOT NULL,
          job_id uuid NOT NULL REFERENCES enrichment.jobs ON DELETE CASCADE,
          name text NOT NULL,
          taxonomy_id text NOT NULL DEFAULT '',
          category text NOT NULL DEFAULT '',
          proficiency integer NOT NULL CHECK (proficiency BETWEEN 1 AND 5),
          confidence real NOT NULL CHECK (confidence BETWEEN 0 AND 1),
          evidence text NOT NULL,
          state text NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'accepted', 'rejected', 'applied', 'not_applied')),
          note text NOT NULL DEFAULT '',
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          UNIQUE (user_id, source, skill_key)
        );
        CREATE INDEX suggestions_job ON enrichment.suggestions (job_id);

        -- The public GitHub data the newest import of each user read (for export and review).
        CREATE TABLE enrichment.github_imports (
          user_id uuid PRIMARY KEY,
          login text NOT NULL,
          job_id uuid NOT NULL REFERENCES enrichment.jobs ON DELETE CASCADE,
          data jsonb NOT NULL,
          imported_at timestamptz NOT NULL DEFAULT now()
        );

        GRANT SELECT, INSERT, UPDATE, DELETE ON enrichment.jobs, enrichment.suggestions, enrichment.github_imports
          TO {ROLE};
        ALTER TABLE enrichment.jobs ENABLE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.jobs FORCE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.suggestions ENABLE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.suggestions FORCE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.github_imports ENABLE ROW LEVEL SECURITY;
        ALTER TABLE enrichment.github_imports FORCE ROW LEVEL SECURITY;
        CREATE POLICY jobs_own ON enrichment.jobs FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        CREATE POLICY suggestions_own ON enrichment.suggestions FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        CREATE POLICY github_imports_own ON enrichment.github_imports FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});

        -- Workers claim due jobs across users, then work on each in a transaction as its
        -- owner. Only this function (the schema owner's policy) sees across users, and it
        -- answers the claimed job's id and owner only. SKIP LOCKED: two workers never wait
        -- for, nor take, the same job.
        CREATE POLICY jobs_owner ON enrichment.jobs FOR ALL TO CURRENT_USER USING (true) WITH CHECK (true);
        CREATE FUNCTION enrichment.claim_job(worker text, lease_seconds double precision)
          RETURNS TABLE (claimed_job uuid, claimed_user uuid)
          LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            UPDATE enrichment.jobs j
            SET state = 'running', lease_owner = worker,
                lease_expires_at = now() + make_interval(secs => lease_seconds),
                attempts = j.attempts + 1, updated_at = now()
            WHERE j.job_id = (
              SELECT c.job_id FROM enrichment.jobs c
              WHERE (c.state = 'queued' AND c.run_after <= now())
                 OR (c.state = 'running' AND c.lease_expires_at < now())
              ORDER BY c.run_after
              LIMIT 1
              FOR UPDATE SKIP LOCKED)
            RETURNING j.job_id, j.user_id
          $$;
        REVOKE ALL ON FUNCTION enrichment.claim_job(text, double precision) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION enrichment.claim_job(text, double precision) TO {ROLE};
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP FUNCTION enrichment.claim_job(text, double precision);
        DROP TABLE enrichment.github_imports, enrichment.suggestions, enrichment.jobs;
        """
    )
