"""Sign-in with GitHub and Google: the provider identities linked to accounts, the pending
OAuth states (authorization code + PKCE) and the audit log's provider.

- identity.oauth_identities: one row per (provider, provider's user id), owned by one account;
  an account has at most one identity per provider. No email is stored here: the account's
  (encrypted) email is the only copy. A flow that starts from the provider's answer finds the
  row by `app.lookup` = SHA-256 of "provider:provider_user_id"; writes need the acting user.
- identity.oauth_states: a StartOAuth that has not completed yet. Only the SHA-256 of the
  state is stored, the PKCE code verifier is encrypted with the data key. The row of the
  presented state is visible (`app.lookup`), and rows expired for more than a day are visible
  and deletable by anyone (StartOAuth purges them).
- audit_log gains `provider` (github/google, no personal data) and the event `provider_linked`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-09
"""

from alembic import op

from services.common.migrations import CALLER, app_role

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = app_role("identity")
LOOKUP = "decode(NULLIF(current_setting('app.lookup', true), ''), 'hex')"
PROVIDERS = "('github', 'google')"
EVENTS_0001 = (
    "sign_up",
    "sign_in_succeeded",
    "sign_in_failed",
    "refresh_reused",
    "password_changed",
    "password_reset",
    "signed_out",
    "email_verified",
)
EVENTS = (*EVENTS_0001, "provider_linked")
STALE = "expires_at < now() - interval '1 day'"


def _events_check(events: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{e}'" for e in events)
    return f"""
        ALTER TABLE identity.audit_log DROP CONSTRAINT audit_log_event_check;
        ALTER TABLE identity.audit_log ADD CONSTRAINT audit_log_event_check CHECK (event IN ({listed}));
    """


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE identity.oauth_identities (
          provider text NOT NULL CHECK (provider IN {PROVIDERS}),
          -- GitHub's numeric user id / Google's `sub`: stable, unlike logins and emails.
          provider_user_id text NOT NULL CHECK (char_length(provider_user_id) BETWEEN 1 AND 255),
          user_id uuid NOT NULL REFERENCES identity.users ON DELETE CASCADE,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (provider, provider_user_id),
          UNIQUE (user_id, provider)
        );

        CREATE TABLE identity.oauth_states (
          state_hash bytea PRIMARY KEY CHECK (octet_length(state_hash) = 32),
          provider text NOT NULL CHECK (provider IN {PROVIDERS}),
          -- AES-256-GCM (nonce || ciphertext) of the PKCE code verifier, bound to state_hash.
          code_verifier_ciphertext bytea NOT NULL,
          redirect_uri text NOT NULL CHECK (char_length(redirect_uri) <= 2048),
          created_at timestamptz NOT NULL DEFAULT now(),
          expires_at timestamptz NOT NULL,
          used_at timestamptz
        );
        CREATE INDEX oauth_states_expiry ON identity.oauth_states (expires_at);

        ALTER TABLE identity.audit_log ADD COLUMN provider text CHECK (provider IN {PROVIDERS});
        {_events_check(EVENTS)}

        GRANT SELECT, INSERT ON identity.oauth_identities TO {ROLE};
        GRANT SELECT, INSERT, UPDATE, DELETE ON identity.oauth_states TO {ROLE};

        ALTER TABLE identity.oauth_identities ENABLE ROW LEVEL SECURITY;
        ALTER TABLE identity.oauth_identities FORCE ROW LEVEL SECURITY;
        CREATE POLICY oauth_identities_read ON identity.oauth_identities FOR SELECT TO {ROLE}
          USING (user_id = {CALLER}
                 OR sha256(convert_to(provider || ':' || provider_user_id, 'UTF8')) = {LOOKUP});
        CREATE POLICY oauth_identities_insert ON identity.oauth_identities FOR INSERT TO {ROLE}
          WITH CHECK (user_id = {CALLER});

        ALTER TABLE identity.oauth_states ENABLE ROW LEVEL SECURITY;
        ALTER TABLE identity.oauth_states FORCE ROW LEVEL SECURITY;
        CREATE POLICY oauth_states_read ON identity.oauth_states FOR SELECT TO {ROLE}
          USING (state_hash = {LOOKUP} OR {STALE});
        CREATE POLICY oauth_states_insert ON identity.oauth_states FOR INSERT TO {ROLE}
          WITH CHECK (state_hash = {LOOKUP});
        CREATE POLICY oauth_states_update ON identity.oauth_states FOR UPDATE TO {ROLE}
          USING (state_hash = {LOOKUP}) WITH CHECK (state_hash = {LOOKUP});
        CREATE POLICY oauth_states_purge ON identity.oauth_states FOR DELETE TO {ROLE} USING ({STALE});
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DROP TABLE identity.oauth_states;
        DROP TABLE identity.oauth_identities;
        DELETE FROM identity.audit_log WHERE event = 'provider_linked';
        ALTER TABLE identity.audit_log DROP COLUMN provider;
        {_events_check(EVENTS_0001)}
        """
    )
