"""Conversations, messages, read cursors, per-user event logs, people (from ProfileChanged),
notifications, digests and reports, with row-level security: only participants read a
conversation and its messages; only its owner reads a user's event log and notifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

from services.common.migrations import CALLER, app_role, create_app_role, create_outbox_and_inbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = app_role("messaging")
# The caller takes part in the conversation row `c`.
PARTICIPANT = f"c.user_ids @> ARRAY[{CALLER}]"


def _shares_conversation(column: str) -> str:
    """The caller is `column` or in a conversation with them (who may write their events)."""
    return (
        f"({column} = {CALLER} OR EXISTS (SELECT 1 FROM messaging.conversations c "
        f"WHERE c.user_ids @> ARRAY[{CALLER}, {column}]))"
    )


def _visible_conversation(table: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM messaging.conversations c WHERE c.conversation_id = {table}.conversation_id "
        f"AND {PARTICIPANT})"
    )


TABLES = (
    "people",
    "conversations",
    "members",
    "messages",
    "streams",
    "stream_events",
    "notifications",
    "digests",
    "reports",
)


def upgrade() -> None:
    create_app_role("messaging")
    rls = "\n".join(
        f"ALTER TABLE messaging.{t} ENABLE ROW LEVEL SECURITY; ALTER TABLE messaging.{t} FORCE ROW LEVEL SECURITY;"
        for t in TABLES
    )
    op.execute(
        f"""
        -- Messaging's copy of display names and avatars (ProfileChanged): it cannot read
        -- MATCHES_ONLY profiles from the profile service.
        CREATE TABLE messaging.people (
          user_id uuid PRIMARY KEY,
          profile_id uuid,
          display_name text NOT NULL DEFAULT '',
          avatar_url text NOT NULL DEFAULT '',
          profile_version bigint NOT NULL DEFAULT 0,
          deleted boolean NOT NULL DEFAULT false
        );

        CREATE TABLE messaging.conversations (
          conversation_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          match_id uuid NOT NULL UNIQUE,
          user_ids uuid[] NOT NULL CHECK (cardinality(user_ids) = 2 AND user_ids[1] <> user_ids[2]),
          -- The seq of the last message: the counter every send bumps under the row lock.
          last_seq bigint NOT NULL DEFAULT 0,
          last_activity_at timestamptz NOT NULL DEFAULT now(),
          blocked_by uuid,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX conversations_users ON messaging.conversations USING gin (user_ids);

        CREATE TABLE messaging.members (
          conversation_id uuid NOT NULL REFERENCES messaging.conversations ON DELETE CASCADE,
          user_id uuid NOT NULL,
          -- The highest seq this member has read; only moves forward.
          read_seq bigint NOT NULL DEFAULT 0,
          PRIMARY KEY (conversation_id, user_id)
        );
        CREATE INDEX members_user ON messaging.members (user_id);

        CREATE TABLE messaging.messages (
          conversation_id uuid NOT NULL REFERENCES messaging.conversations ON DELETE CASCADE,
          seq bigint NOT NULL,
          message_id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
          sender_id uuid NOT NULL,
          client_message_id uuid NOT NULL,
          text text NOT NULL,
          -- The sender deleted their account: the text is erased, the seq stays.
          redacted boolean NOT NULL DEFAULT false,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (conversation_id, seq),
          UNIQUE (sender_id, client_message_id),
          CHECK (redacted OR char_length(text) BETWEEN 1 AND 1000)
        );

        -- Per-user event log behind StreamEvents: seq is the user's cursor, bumped under the
        -- row lock of streams, so it grows in commit order without gaps.
        CREATE TABLE messaging.streams (
          user_id uuid PRIMARY KEY,
          last_seq bigint NOT NULL DEFAULT 0,
          -- Events up to here were dropped (only the newest are kept): older cursors resync.
          trimmed_seq bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE messaging.stream_events (
          user_id uuid NOT NULL,
          seq bigint NOT NULL,
          payload bytea NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (user_id, seq)
        );

        CREATE TABLE messaging.notifications (
          notification_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          user_id uuid NOT NULL,
          kind text NOT NULL,
          title text NOT NULL,
          body text NOT NULL DEFAULT '',
          conversation_id uuid,
          read_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX notifications_user ON messaging.notifications (user_id, created_at DESC);
        -- At most one unread new-message notification per conversation and user (it is updated).
        CREATE UNIQUE INDEX notifications_unread_message ON messaging.notifications (user_id, conversation_id)
          WHERE kind = 'NOTIFICATION_KIND_NEW_MESSAGE' AND read_at IS NULL;

        CREATE TABLE messaging.digests (
          user_id uuid PRIMARY KEY,
          email text NOT NULL CHECK (char_length(email) <= 254),
          enabled boolean NOT NULL DEFAULT true,
          last_sent_at timestamptz
        );

        CREATE TABLE messaging.reports (
          report_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
          conversation_id uuid NOT NULL,
          reporter_id uuid NOT NULL,
          reported_id uuid NOT NULL,
          reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1000),
          -- The conversation's messages when reported, kept for review.
          evidence jsonb NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now()
        );

        GRANT SELECT, INSERT, UPDATE ON messaging.people, messaging.conversations, messaging.members,
          messaging.messages, messaging.streams, messaging.notifications, messaging.digests TO {ROLE};
        GRANT SELECT, INSERT, DELETE ON messaging.stream_events TO {ROLE};
        GRANT DELETE ON messaging.digests, messaging.notifications TO {ROLE};
        GRANT SELECT, INSERT ON messaging.reports TO {ROLE};

        {rls}

        CREATE POLICY people_read ON messaging.people FOR SELECT TO {ROLE} USING ({_shares_conversation("user_id")});
        CREATE POLICY people_insert ON messaging.people FOR INSERT TO {ROLE} WITH CHECK (user_id = {CALLER});
        CREATE POLICY people_update ON messaging.people FOR UPDATE TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});

        CREATE POLICY conversations_read ON messaging.conversations FOR SELECT TO {ROLE}
          USING (user_ids @> ARRAY[{CALLER}]);
        CREATE POLICY conversations_insert ON messaging.conversations FOR INSERT TO {ROLE}
          WITH CHECK (user_ids @> ARRAY[{CALLER}]);
        CREATE POLICY conversations_update ON messaging.conversations FOR UPDATE TO {ROLE}
          USING (user_ids @> ARRAY[{CALLER}]) WITH CHECK (user_ids @> ARRAY[{CALLER}]);

        CREATE POLICY members_read ON messaging.members FOR SELECT TO {ROLE} USING ({_visible_conversation("members")});
        CREATE POLICY members_insert ON messaging.members FOR INSERT TO {ROLE}
          WITH CHECK ({_visible_conversation("members")});
        CREATE POLICY members_update ON messaging.members FOR UPDATE TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});

        CREATE POLICY messages_read ON messaging.messages FOR SELECT TO {ROLE}
          USING ({_visible_conversation("messages")});
        -- Only as oneself, into a conversation one takes part in that nobody blocked.
        CREATE POLICY messages_insert ON messaging.messages FOR INSERT TO {ROLE} WITH CHECK (
          sender_id = {CALLER} AND EXISTS (
            SELECT 1 FROM messaging.conversations c
            WHERE c.conversation_id = messages.conversation_id AND {PARTICIPANT} AND c.blocked_by IS NULL)
        );
        CREATE POLICY messages_update ON messaging.messages FOR UPDATE TO {ROLE}
          USING (sender_id = {CALLER}) WITH CHECK (sender_id = {CALLER});

        CREATE POLICY streams_access ON messaging.streams FOR ALL TO {ROLE}
          USING ({_shares_conversation("user_id")}) WITH CHECK ({_shares_conversation("user_id")});
        CREATE POLICY stream_events_read ON messaging.stream_events FOR SELECT TO {ROLE} USING (user_id = {CALLER});
        CREATE POLICY stream_events_insert ON messaging.stream_events FOR INSERT TO {ROLE}
          WITH CHECK ({_shares_conversation("user_id")});
        CREATE POLICY stream_events_delete ON messaging.stream_events FOR DELETE TO {ROLE} USING (user_id = {CALLER});

        -- One's own; and those about a conversation one takes part in (a new match, unread
        -- messages there), which the other participant writes and must see to not repeat them.
        CREATE POLICY notifications_read ON messaging.notifications FOR SELECT TO {ROLE} USING (
          user_id = {CALLER} OR (conversation_id IS NOT NULL AND {_visible_conversation("notifications")})
        );
        CREATE POLICY notifications_insert ON messaging.notifications FOR INSERT TO {ROLE}
          WITH CHECK ({_shares_conversation("user_id")});
        CREATE POLICY notifications_update ON messaging.notifications FOR UPDATE TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        CREATE POLICY notifications_delete ON messaging.notifications FOR DELETE TO {ROLE} USING (user_id = {CALLER});

        CREATE POLICY digests_own ON messaging.digests FOR ALL TO {ROLE}
          USING (user_id = {CALLER}) WITH CHECK (user_id = {CALLER});
        -- The digest loop (a transaction without a caller) finds who opted in.
        CREATE POLICY digests_due ON messaging.digests FOR SELECT TO {ROLE} USING ({CALLER} IS NULL);

        CREATE POLICY reports_insert ON messaging.reports FOR INSERT TO {ROLE} WITH CHECK (
          reporter_id = {CALLER} AND {_visible_conversation("reports")}
        );
        CREATE POLICY reports_read ON messaging.reports FOR SELECT TO {ROLE} USING (reporter_id = {CALLER});
        """
    )
    create_outbox_and_inbox("messaging")


def downgrade() -> None:
    op.execute("DROP SCHEMA messaging CASCADE")
