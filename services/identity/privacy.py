"""A signed-in user exports or erases everything OpenHR holds about them (PrivacyService).

ExportMyData: identity's own sections (the account with its email decrypted, linked sign-in
providers, sessions without secrets, the audit log) plus the ExportUserData of every peer
service that stores user data (OPENHR_USER_DATA_PEERS), called on behalf of the user.

DeleteMe: first every peer's DeleteUserData (on behalf of the user; idempotent), then one
identity transaction erases the account (store.erase_user) and writes the outbox event
UserDeleted, which every replica of every service reads to refuse the user's access tokens
that are still unexpired (services/common/revocations.py). A peer that cannot be reached
answers UNAVAILABLE before identity changed anything: the user can retry. Kept: the user id
(with deleted_at, so that it is never reused) and the audit rows, which hold no PII once the
email lookup hashes are cleared. Deleting again is a no-op that succeeds (the token of an
erased user is refused anyway once the event arrived)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import grpc
import structlog
from google.protobuf import json_format

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from services.common import errors
from services.common.clients import channel
from services.common.db import Database
from services.common.json_mapping import to_json
from services.common.logging import current_request_id
from services.common.outbox import add_event, new_event
from services.identity import store
from services.identity.crypto import Box, email_context

log = structlog.get_logger("privacy")
SERVICE = "identity"
TOPIC = "identity"
PEER_TIMEOUT = 10.0


class Peers:
    """Channels to the services holding user data, by service name."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self._stubs = {
            name: (chan := channel(address), user_data_pb2_grpc.UserDataServiceStub(chan))
            for name, address in addresses.items()
        }

    def stubs(self) -> dict[str, user_data_pb2_grpc.UserDataServiceStub]:
        return {name: stub for name, (_chan, stub) in self._stubs.items()}

    async def close(self) -> None:
        for chan, _stub in self._stubs.values():
            await chan.close()


async def _call_peer(name: str, call):
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        log.warning("user data peer failed", peer=name, code=exc.code().name)
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise errors.unauthenticated(f"{name} refused the request: sign in again") from exc
        raise errors.unavailable(f"the {name} service is unavailable, try again later") from exc


class Privacy:
    """Export and erasure across identity and every user data peer."""

    def __init__(self, db: Database, box: Box, peers: Peers) -> None:
        self._db, self._box, self._peers = db, box, peers

    async def _own_sections(self, user_id: str) -> dict:
        async with self._db.transaction(user_id) as tx:
            account = await store.account_of(tx, user_id)
            if account is None:
                raise errors.unauthenticated("account deleted")
            identities = await store.identities_of(tx, user_id)
            sessions = await store.sessions_of(tx, user_id)
            audit = await store.audit_of(tx, user_id)
        return {
            "account": {
                "user_id": user_id,
                "email": self._box.open(account["email_ciphertext"], email_context(user_id)).decode(),
                "email_verified": account["email_verified"],
                "email_verified_time": account["email_verified_at"],
                "display_name": account["display_name"],
                "has_password": account["has_password"],
                "password_change_time": account["password_changed_at"],
                "create_time": account["created_at"],
            },
            "providers": [
                {
                    "provider": r["provider"],
                    "provider_user_id": r["provider_user_id"],
                    "link_time": r["created_at"],
                }
                for r in identities
            ],
            "sessions": [
                {
                    "session_id": str(r["family_id"]),
                    "create_time": r["created_at"],
                    "expire_time": r["expires_at"],
                    "revoke_time": r["revoked_at"],
                    "refreshes": r["refreshes"],
                }
                for r in sessions
            ],
            "audit_log": [
                {
                    "time": r["occurred_at"],
                    "event": r["event"],
                    "provider": r["provider"],
                    "request_id": r["request_id"],
                }
                for r in audit
            ],
        }

    async def export(self, user_id: str) -> dict:
        """identity's sections and each peer's export, by service name."""
        data = {SERVICE: to_json(await self._own_sections(user_id))}
        stubs = self._peers.stubs()
        answers = await asyncio.gather(
            *(
                _call_peer(
                    name,
                    stub.ExportUserData(user_data_pb2.ExportUserDataRequest(user_id=user_id), timeout=PEER_TIMEOUT),
                )
                for name, stub in stubs.items()
            )
        )
        for name, answer in zip(stubs, answers, strict=True):
            data[answer.service or name] = json_format.MessageToDict(answer.data)
        return data

    async def delete_user(self, user_id: str) -> bool:
        """Peers first (any failure: UNAVAILABLE, identity unchanged), then identity. True when
        this call erased the account, False when it was erased before."""
        stubs = self._peers.stubs()
        answers = await asyncio.gather(
            *(
                _call_peer(
                    name,
                    stub.DeleteUserData(user_data_pb2.DeleteUserDataRequest(user_id=user_id), timeout=PEER_TIMEOUT),
                )
                for name, stub in stubs.items()
            )
        )
        request_id = current_request_id()
        async with self._db.transaction(user_id) as tx:
            erased = await store.erase_user(tx, user_id)
            if erased:
                await store.audit(tx, "account_deleted", user_id=user_id, request_id=request_id)
                event = new_event(SERVICE, user_id, request_id)
                event.user_deleted.SetInParent()
                await add_event(tx, store.SCHEMA, TOPIC, event)
        log.info("account deleted", erased=erased, peers={a.service: dict(a.deleted) for a in answers})
        return erased
