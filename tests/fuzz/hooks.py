"""Schemathesis hooks for the edge fuzz (tests/fuzz/edge_fuzz.py loads them with
SCHEMATHESIS_HOOKS): the check that a refused request stored nothing.

Before every request that may write (not GET), the hooks take a fingerprint of everything stored
about the fuzzing user (FUZZ_USER_ID) in every service's tables, read as the database superuser
(FUZZ_DATABASE_URL); when the answer is a 4xx, the fingerprint after must equal the one before.
Refused sign-ins are audited by design (identity.audit_log), so the audit log is left out. The
run uses one worker: a concurrent success would change the fingerprint."""

from __future__ import annotations

import os
import threading

import psycopg
import schemathesis

# (table, the column naming the user) of everything a public route may write for a user.
USER_TABLES = (
    ("identity.users", "user_id"),
    ("identity.oauth_identities", "user_id"),
    ("profile.profiles", "user_id"),
    ("profile.skills", "user_id"),
    ("profile.endorsements", "endorser_user_id"),
    ("profile.connections", "user_id"),
    ("enrichment.jobs", "user_id"),
    ("enrichment.suggestions", "user_id"),
    ("matching.decisions", "actor_user_id"),
    ("matching.blocks", "blocker_user_id"),
    ("messaging.messages", "sender_id"),
    ("messaging.notifications", "user_id"),
    ("messaging.digests", "user_id"),
    ("messaging.reports", "reporter_id"),
)
FINGERPRINT = " || ".join(
    f"(SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM {table} t WHERE {column} = %(user)s)"
    for table, column in USER_TABLES
)

_local = threading.local()
_before: dict[str, str] = {}


def fingerprint() -> str:
    if getattr(_local, "connection", None) is None:
        _local.connection = psycopg.connect(os.environ["FUZZ_DATABASE_URL"], autocommit=True)
    row = _local.connection.execute(f"SELECT {FINGERPRINT}", {"user": os.environ["FUZZ_USER_ID"]}).fetchone()
    return row[0]


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    if case.method.upper() != "GET":
        _before[case.id] = fingerprint()


@schemathesis.check
def nothing_stored_when_refused(ctx, response, case) -> None:
    """A 4xx answer to a request that may write left every stored row of the user as it was."""
    before = _before.pop(case.id, None)
    if before is None or not 400 <= response.status_code < 500:
        return
    if fingerprint() != before:
        raise AssertionError(f"{case.method} {case.formatted_path} answered {response.status_code} and stored data")
