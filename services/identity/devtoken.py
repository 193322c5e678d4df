"""`make token USER=you@example.com` (local mode only): an access token signed with the
development key for the account with that email, so that it and a token from signing in name
the same user. An address without an account (or a stack that is not running) gets a
stand-alone development user instead, derived from the address, and is told so on stderr.

    python -m services.identity.devtoken you@example.com [--ttl 3600]"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from services.common.db import Database
from services.common.devkeys import mint_token, user_id_for
from services.identity import store
from services.identity.app import KEY_DIR, IdentitySettings
from services.identity.crypto import load_secrets, lookup_hash
from services.identity.validation import normalize_email


async def account_user_id(settings: IdentitySettings, email: str) -> str | None:
    """The user id of the live account with this email; None if there is none. Raises OSError
    or asyncpg's errors when the database cannot be asked."""
    secrets = load_secrets(
        settings.data_key.get_secret_value(), settings.lookup_key.get_secret_value(), local=True, key_dir=KEY_DIR
    )
    lookup = lookup_hash(secrets.lookup_key, normalize_email(email))
    db = Database.for_service(settings, store.SCHEMA)
    try:
        async with db.transaction(None) as tx:
            await store.set_lookup(tx, lookup)
            user = await store.user_by_lookup(tx, lookup)
    finally:
        await db.close()
    return str(user.user_id) if user else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("email")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    args = parser.parse_args()
    settings = IdentitySettings()
    if settings.env != "local":
        print("development tokens exist only when OPENHR_ENV=local", file=sys.stderr)
        return 2
    try:
        user_id = asyncio.run(account_user_id(settings, args.email))
        why = "" if user_id else "there is no account with this email"
    except (OSError, asyncpg.PostgresError) as exc:
        user_id, why = None, f"the database cannot be asked ({type(exc).__name__}: is `make run` running?)"
    if user_id is None:
        user_id = user_id_for(args.email)
        print(f"{why}: this token is for a stand-alone development user ({user_id}), not an account", file=sys.stderr)
    print(mint_token(user_id, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
