"""Users (email encrypted, looked up by keyed hash), refresh-token families, one-time link
tokens, signing keys and the append-only audit log, with row-level security.

Most identity work starts before the user is known: a sign-in knows an email, a refresh or a
link knows a secret. So besides `app.user_id` the policies accept `app.lookup`: the hex of an
email lookup hash or a token's SHA-256, set by the service for that one transaction. A query
can then see only the rows of the user it acts for, or the one row whose secret it holds;
writes are allowed on the acting user's rows only.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from alembic import op

from services.common.migrations import CALLER, app_role, create_app_role, create_outbox_and_inbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = app_role("identity")
LOOKUP = "decode(NULLIF(current_setting('app.lookup', true), ''), 'hex')"
AUDIT_EVENTS = (
    "sign_up",
    "sign_in_succeeded",
    "sign_in_failed",
    "refresh_reused",
    "password_changed",
    "password_reset",
    "signed_out",
    "email_verified",
)


def _own_rows(table: str, secret_column: str) -> str:
    """Read: the acting user's rows or the row of the presented secret; write: own rows only."""
    name = table.split(".")[1]
    return f"""
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
        CREATE POLICY {name}_read ON {table} FOR SELECT TO {ROLE}
          USING (user_id = {CALLER} OR {secret_column} = {LOOKUP});
        CREATE POLICY {name}_insert ON {table} FOR INSERT TO {ROLE} WITH CHECK (user_id = {CALLER});
        CREATE POLICY {name}_update ON {table} FOR UPDATE TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
    """


def upgrade() -> None:
    create_app_role("identity")
    events = ", ".join(f"'{e}'" for e in AUDIT_EVENTS)
    op.execute(
        f"""
        CREATE TABLE identity.users (
          user_id uuid PRIMARY KEY,
          -- AES-256-GCM (nonce || ciphertext), bound to user_id as associated data.
          email_ciphertext bytea NOT NULL,
          -- HMAC-SHA256 of the normalized email under the lookup key: uniqueness and sign-in.
          email_lookup bytea NOT NULL UNIQUE CHECK (octet_length(email_lookup) = 32),
          email_verified boolean NOT NULL DEFAULT false,
          email_verified_at timestamptz,
          -- argon2id (PHC string). NULL: no password (accounts that only sign in with a provider).
          password_hash text,
          password_changed_at timestamptz,
          display_name text NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 80),
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          deleted_at timestamptz
        );

        -- Opaque refresh tokens (SHA-256 stored), one family per sign-in; each use rotates.
        CREATE TABLE identity.refresh_tokens (
          token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
          user_id uuid NOT NULL REFERENCES identity.users ON DELETE CASCADE,
          family_id uuid NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          expires_at timestamptz NOT NULL,
          rotated_at timestamptz,
          revoked_at timestamptz
        );
        CREATE INDEX refresh_tokens_family ON identity.refresh_tokens (family_id);
        CREATE INDEX refresh_tokens_user_live ON identity.refresh_tokens (user_id) WHERE revoked_at IS NULL;

        -- Email verification and password reset links (SHA-256 stored), single use.
        CREATE TABLE identity.one_time_tokens (
          token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
          user_id uuid NOT NULL REFERENCES identity.users ON DELETE CASCADE,
          purpose text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
          created_at timestamptz NOT NULL DEFAULT now(),
          expires_at timestamptz NOT NULL,
          used_at timestamptz
        );
        CREATE INDEX one_time_tokens_user ON identity.one_time_tokens (user_id, purpose) WHERE used_at IS NULL;

        -- Ed25519 keys that sign access tokens; the private key encrypted with the data key.
        -- A key signs from activates_at (published in the JWKS before that) until the next
        -- key activates (retired_at), and stays published until its last tokens expired.
        CREATE TABLE identity.signing_keys (
          kid text PRIMARY KEY,
          public_jwk jsonb NOT NULL,
          private_key_ciphertext bytea NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          activates_at timestamptz NOT NULL,
          retired_at timestamptz
        );

        -- Security events, append only (no UPDATE or DELETE granted), no PII: a failed
        -- sign-in of an unknown address keeps its lookup hash, never the address.
        CREATE TABLE identity.audit_log (
          id bigserial PRIMARY KEY,
          occurred_at timestamptz NOT NULL DEFAULT now(),
          event text NOT NULL CHECK (event IN ({events})),
          user_id uuid,
          email_lookup bytea CHECK (email_lookup IS NULL OR octet_length(email_lookup) = 32),
          request_id text NOT NULL DEFAULT '' CHECK (char_length(request_id) <= 128)
        );
        CREATE INDEX audit_log_user ON identity.audit_log (user_id, occurred_at) WHERE user_id IS NOT NULL;
        CREATE INDEX audit_log_lookup ON identity.audit_log (email_lookup, occurred_at) WHERE email_lookup IS NOT NULL;

        GRANT SELECT, INSERT, UPDATE ON identity.users, identity.refresh_tokens, identity.one_time_tokens TO {ROLE};
        GRANT SELECT, INSERT, UPDATE ON identity.signing_keys TO {ROLE};
        GRANT SELECT, INSERT ON identity.audit_log TO {ROLE};
        GRANT USAGE ON SEQUENCE identity.audit_log_id_seq TO {ROLE};

        {_own_rows("identity.users", "email_lookup")}
        {_own_rows("identity.refresh_tokens", "token_hash")}
        {_own_rows("identity.one_time_tokens", "token_hash")}

        ALTER TABLE identity.audit_log ENABLE ROW LEVEL SECURITY;
        ALTER TABLE identity.audit_log FORCE ROW LEVEL SECURITY;
        CREATE POLICY audit_log_read ON identity.audit_log FOR SELECT TO {ROLE} USING (user_id = {CALLER});
        -- The acting user's events, or events of no known user (a failed sign-in of an
        -- unknown address) written by a transaction that acts for nobody.
        CREATE POLICY audit_log_insert ON identity.audit_log FOR INSERT TO {ROLE}
          WITH CHECK (user_id IS NOT DISTINCT FROM {CALLER});
        """
    )
    create_outbox_and_inbox("identity")


def downgrade() -> None:
    op.execute("DROP SCHEMA identity CASCADE")
