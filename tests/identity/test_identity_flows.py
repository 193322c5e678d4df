"""Every email + password flow end to end through the REST edge: sign-up, the verification
mail, verification, sign-in, refresh rotation and reuse detection, sign-out, password reset
(single use, expiry) and change, and identity's tokens accepted by the other services."""

from __future__ import annotations

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.identity.v1 import identity_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from tests.identity.support import (
    PASSWORD,
    RPC_TIMEOUT,
    claims,
    login,
    new_email,
    next_link,
    refresh,
    sign_up,
    token_hash,
)
from tests.users import rest_violations


async def _audit(db, user_id: str) -> list[str]:
    rows = await db.fetch("SELECT event FROM identity.audit_log WHERE user_id = $1 ORDER BY id", user_id)
    return [row["event"] for row in rows]


async def test_sign_up_mails_a_link_that_verifies_the_address_once(mesh: Mesh, rest, db) -> None:
    account = await sign_up(rest)
    first = await claims(rest, account.access_token)
    assert first["sub"] == account.user_id and first["email_verified"] is False
    assert first["sid"] and first["jti"] and first["exp"] - first["iat"] == 900

    token = await next_link(mesh, account.email, "verify-email")
    verified = await rest.post("/v1/auth/email:verify", json={"token": token})
    assert verified.status_code == 200, verified.text
    again = await rest.post("/v1/auth/email:verify", json={"token": token})
    assert again.status_code == 400 and rest_violations(again.json()) == ["token"], again.text

    signed_in = await login(rest, account)
    assert signed_in.status_code == 200, signed_in.text
    assert (await claims(rest, signed_in.json()["tokens"]["accessToken"]))["email_verified"] is True
    assert await _audit(db, account.user_id) == ["sign_up", "email_verified", "sign_in_succeeded"]


async def test_verification_link_expires(mesh: Mesh, rest, db) -> None:
    account = await sign_up(rest)
    token = await next_link(mesh, account.email, "verify-email")
    await db.execute(
        "UPDATE identity.one_time_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        token_hash(token),
    )
    expired = await rest.post("/v1/auth/email:verify", json={"token": token})
    assert expired.status_code == 400 and rest_violations(expired.json()) == ["token"], expired.text


async def test_a_lost_verification_mail_can_be_asked_for_again(mesh: Mesh, rest) -> None:
    account = await sign_up(rest)
    first = await next_link(mesh, account.email, "verify-email")
    anonymous = await rest.post("/v1/auth/email:resend", json={})
    assert anonymous.status_code == 401, anonymous.text

    resent = await rest.post("/v1/auth/email:resend", json={}, headers=account.headers)
    assert (resent.status_code, resent.json()) == (200, {"verificationSent": True}), resent.text
    second = await next_link(mesh, account.email, "verify-email", seen={first})
    assert (await rest.post("/v1/auth/email:verify", json={"token": second})).status_code == 200

    done = await rest.post("/v1/auth/email:resend", json={}, headers=account.headers)
    assert done.status_code == 400 and "already verified" in done.json()["message"], done.text


async def test_unverified_accounts_may_sign_in(rest) -> None:
    account = await sign_up(rest)
    signed_in = await login(rest, account)
    assert signed_in.status_code == 200, signed_in.text
    assert (await claims(rest, signed_in.json()["tokens"]["accessToken"]))["email_verified"] is False


async def test_email_is_case_insensitive_and_taken_once(rest) -> None:
    account = await sign_up(rest)
    upper = account.email.upper()
    assert (await rest.post("/v1/auth/login", json={"email": upper, "password": PASSWORD})).status_code == 200
    taken = await rest.post("/v1/auth/signup", json={"email": f"  {upper} ", "password": "another-fine-passphrase"})
    assert taken.status_code == 409, taken.text


async def test_refresh_rotates_and_reuse_revokes_the_family(rest, db) -> None:
    account = await sign_up(rest)
    first = account.refresh_token
    rotated = await refresh(rest, first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["tokens"]
    assert second["refreshToken"] not in ("", first) and second["userId"] == account.user_id
    assert (await claims(rest, second["accessToken"]))["sid"] == (await claims(rest, account.access_token))["sid"]
    third = (await refresh(rest, second["refreshToken"])).json()["tokens"]["refreshToken"]

    # The first token again: someone holds a copy. The whole family dies, the newest token too.
    reused = await refresh(rest, first)
    assert reused.status_code == 401, reused.text
    assert (await refresh(rest, third)).status_code == 401
    assert (await refresh(rest, second["refreshToken"])).status_code == 401
    assert await _audit(db, account.user_id) == ["sign_up", "refresh_reused"]
    live = await db.fetchval(
        "SELECT count(*) FROM identity.refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL", account.user_id
    )
    assert live == 0
    # Other sessions of the account are not that family: a new sign-in works.
    assert (await login(rest, account)).status_code == 200


async def test_expired_refresh_token_is_refused(rest, db) -> None:
    account = await sign_up(rest)
    await db.execute(
        "UPDATE identity.refresh_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        token_hash(account.refresh_token),
    )
    assert (await refresh(rest, account.refresh_token)).status_code == 401


async def test_unknown_and_malformed_refresh_tokens(rest) -> None:
    assert (await refresh(rest, "never-issued")).status_code == 401
    oversized = await refresh(rest, "r" * 300)
    assert oversized.status_code == 400 and rest_violations(oversized.json()) == ["refreshToken"]
    missing = await rest.post("/v1/auth/refresh", json={})
    assert missing.status_code == 401, missing.text


async def test_logout_revokes_the_session(rest, db) -> None:
    account = await sign_up(rest)
    other = (await login(rest, account)).json()["tokens"]["refreshToken"]
    assert (await rest.post("/v1/auth/logout", json={"refreshToken": account.refresh_token})).status_code == 200
    assert (await refresh(rest, account.refresh_token)).status_code == 401
    assert (await refresh(rest, other)).status_code == 200, "only the signed-out session ends"
    # Idempotent, and says nothing about unknown tokens.
    assert (await rest.post("/v1/auth/logout", json={"refreshToken": account.refresh_token})).status_code == 200
    assert (await rest.post("/v1/auth/logout", json={"refreshToken": "never-issued"})).status_code == 200
    assert (await _audit(db, account.user_id)).count("signed_out") == 2


async def test_logout_everywhere_ends_every_session_of_the_user(rest) -> None:
    account = await sign_up(rest)
    laptop = (await login(rest, account)).json()["tokens"]["refreshToken"]
    someone_else = await sign_up(rest)
    signed_out = await rest.post("/v1/auth/logout", json={"refreshToken": account.refresh_token, "everywhere": True})
    assert signed_out.status_code == 200, signed_out.text
    assert (await refresh(rest, account.refresh_token)).status_code == 401
    assert (await refresh(rest, laptop)).status_code == 401, "the other device is signed out too"
    assert (await refresh(rest, someone_else.refresh_token)).status_code == 200, "nobody else is"


async def test_password_reset_link_works_once_and_signs_out_everywhere(mesh: Mesh, rest, db) -> None:
    account = await sign_up(rest)
    assert (await rest.post("/v1/auth/password:forgot", json={"email": account.email.lower()})).status_code == 200
    token = await next_link(mesh, account.email, "reset-password")

    weak = await rest.post("/v1/auth/password:reset", json={"token": token, "newPassword": "password1"})
    assert weak.status_code == 400 and rest_violations(weak.json()) == ["newPassword"], weak.text

    new_password = "amber-lantern-orchard"
    reset = await rest.post("/v1/auth/password:reset", json={"token": token, "newPassword": new_password})
    assert reset.status_code == 200, reset.text
    twice = await rest.post("/v1/auth/password:reset", json={"token": token, "newPassword": "cobalt-meadow-ferry"})
    assert twice.status_code == 400 and rest_violations(twice.json()) == ["token"], twice.text

    assert (await refresh(rest, account.refresh_token)).status_code == 401
    assert (await login(rest, account)).status_code == 401
    assert (await login(rest, account, new_password)).status_code == 200
    assert "password_reset" in await _audit(db, account.user_id)


async def test_password_reset_link_expires(mesh: Mesh, rest, db) -> None:
    account = await sign_up(rest)
    await rest.post("/v1/auth/password:forgot", json={"email": account.email})
    token = await next_link(mesh, account.email, "reset-password")
    await db.execute(
        "UPDATE identity.one_time_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        token_hash(token),
    )
    expired = await rest.post("/v1/auth/password:reset", json={"token": token, "newPassword": "amber-lantern-orchard"})
    assert expired.status_code == 400 and rest_violations(expired.json()) == ["token"], expired.text
    assert (await login(rest, account)).status_code == 200, "the password is unchanged"


async def test_reset_for_an_unknown_address_answers_the_same(mesh: Mesh, rest) -> None:
    unknown = "nobody-" + "x" * 8 + "@example.com"
    response = await rest.post("/v1/auth/password:forgot", json={"email": unknown})
    assert (response.status_code, response.json()) == (200, {})
    malformed = await rest.post("/v1/auth/password:forgot", json={"email": "not-an-address"})
    assert malformed.status_code == 400 and rest_violations(malformed.json()) == ["email"]


async def test_change_password_keeps_this_session_and_ends_the_others(rest, db) -> None:
    account = await sign_up(rest)
    other = (await login(rest, account)).json()["tokens"]["refreshToken"]
    new_password = "quartz-willow-signal"

    wrong = await rest.post(
        "/v1/auth/password:change",
        json={"currentPassword": "not-the-password", "newPassword": new_password},
        headers=account.headers,
    )
    assert wrong.status_code == 403, wrong.text
    unauthenticated = await rest.post(
        "/v1/auth/password:change", json={"currentPassword": PASSWORD, "newPassword": new_password}
    )
    assert unauthenticated.status_code == 401, unauthenticated.text
    common = await rest.post(
        "/v1/auth/password:change",
        json={"currentPassword": PASSWORD, "newPassword": "iloveyou"},
        headers=account.headers,
    )
    assert common.status_code == 400 and rest_violations(common.json()) == ["newPassword"], common.text

    changed = await rest.post(
        "/v1/auth/password:change",
        json={"currentPassword": PASSWORD, "newPassword": new_password},
        headers=account.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (await refresh(rest, other)).status_code == 401, "other sessions are signed out"
    assert (await refresh(rest, account.refresh_token)).status_code == 200, "this session stays"
    assert (await login(rest, account)).status_code == 401
    assert (await login(rest, account, new_password)).status_code == 200
    assert "password_changed" in await _audit(db, account.user_id)


async def test_identity_tokens_work_at_the_profile_service(mesh: Mesh, rest, profile_channel) -> None:
    account = await sign_up(rest)
    created = await rest.post("/v1/profiles", json={"displayName": "Identity User"}, headers=account.headers)
    assert created.status_code == 200, created.text
    assert created.json()["profile"]["userId"] == account.user_id

    through_edge = await rest.get("/v1/profiles/me", headers=account.headers)
    assert through_edge.status_code == 200 and through_edge.json()["profile"]["userId"] == account.user_id

    direct = await profile_pb2_grpc.ProfileServiceStub(profile_channel).GetMyProfile(
        profile_pb2.GetMyProfileRequest(), metadata=(("authorization", f"Bearer {account.access_token}"),)
    )
    assert direct.profile.user_id == account.user_id


async def test_development_tokens_still_work_locally(mesh: Mesh, rest) -> None:
    """`make token` signs with the development key, which identity's JWKS carries in local mode."""
    document = (await rest.get("/.well-known/jwks.json")).json()
    development_kid = (mesh.key_dir / "kid").read_text()
    assert development_kid in [key["kid"] for key in document["keys"]]
    response = await rest.get("/v1/profiles/me", headers={"authorization": f"Bearer {mesh.token()}"})
    assert response.status_code == 404, response.text  # authenticated, no profile yet


async def test_jwks_shape(rest) -> None:
    response = await rest.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        assert key["kid"] and key["x"] and "d" not in key
    assert len({key["kid"] for key in keys}) == len(keys)


async def test_sign_up_needs_no_token_but_change_password_does(identity) -> None:
    response = await identity.SignUp(
        identity_pb2.SignUpRequest(email=new_email("grpc"), password="signal-harbour-quilt"),
        timeout=RPC_TIMEOUT,
    )
    assert response.tokens.access_token and response.tokens.refresh_token
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.ChangePassword(
            identity_pb2.ChangePasswordRequest(current_password="signal-harbour-quilt", new_password="x" * 12),
            timeout=RPC_TIMEOUT,
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
