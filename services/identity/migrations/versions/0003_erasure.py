"""Erasure of an account (PrivacyService.DeleteMe, services/identity/privacy.py).

- identity.users: an erased row keeps its user_id (never reused) and deleted_at; its email
  ciphertext and lookup hash become NULL (allowed only once deleted_at is set), as do the
  password hash and the display name.
- one_time_tokens and oauth_identities: the acting user may delete their own rows.
- audit_log stays append-only, except that the acting user may clear the email lookup hash of
  their own rows (UPDATE of that one column, only to NULL): what is kept is PII-free.
- audit_log gains the event `account_deleted`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-16
"""

from alembic import op

from services.common.migrations import CALLER, app_role

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLE = app_role("identity")
EVENTS_0002 = (
    "sign_up",
    "sign_in_succeeded",
    "sign_in_failed",
    "refresh_reused",
    "password_changed",
    "password_reset",
    "signed_out",
    "email_verified",
    "provider_linked",
)
EVENTS = (*EVENTS_0002, "account_deleted")


def _events_check(events: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{e}'" for e in events)
    return f"""
        ALTER TABLE identity.audit_log DROP CONSTRAINT audit_log_event_check;
        ALTER TABLE identity.audit_log ADD CONSTRAINT audit_log_event_check CHECK (event IN ({listed}));
    """


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE identity.users ALTER COLUMN email_ciphertext DROP NOT NULL;
        ALTER TABLE identity.users ALTER COLUMN email_lookup DROP NOT NULL;
        ALTER TABLE identity.users ADD CONSTRAINT users_email_unless_deleted
          CHECK (deleted_at IS NOT NULL OR (email_ciphertext IS NOT NULL AND email_lookup IS NOT NULL));

        GRANT DELETE ON identity.one_time_tokens, identity.oauth_identities TO {ROLE};
        CREATE POLICY one_time_tokens_delete ON identity.one_time_tokens FOR DELETE TO {ROLE}
          USING (user_id = {CALLER});
        CREATE POLICY oauth_identities_delete ON identity.oauth_identities FOR DELETE TO {ROLE}
          USING (user_id = {CALLER});

        GRANT UPDATE (email_lookup) ON identity.audit_log TO {ROLE};
        CREATE POLICY audit_log_scrub ON identity.audit_log FOR UPDATE TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER} AND email_lookup IS NULL);
        {_events_check(EVENTS)}
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DELETE FROM identity.audit_log WHERE event = 'account_deleted';
        {_events_check(EVENTS_0002)}
        DROP POLICY audit_log_scrub ON identity.audit_log;
        REVOKE UPDATE (email_lookup) ON identity.audit_log FROM {ROLE};
        DROP POLICY oauth_identities_delete ON identity.oauth_identities;
        DROP POLICY one_time_tokens_delete ON identity.one_time_tokens;
        REVOKE DELETE ON identity.one_time_tokens, identity.oauth_identities FROM {ROLE};
        ALTER TABLE identity.users DROP CONSTRAINT users_email_unless_deleted;
        DELETE FROM identity.users WHERE email_lookup IS NULL;
        ALTER TABLE identity.users ALTER COLUMN email_lookup SET NOT NULL;
        ALTER TABLE identity.users ALTER COLUMN email_ciphertext SET NOT NULL;
        """
    )
