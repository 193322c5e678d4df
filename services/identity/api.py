"""The identity service's gRPC servicers: thin translation between protos, metadata (cookies,
CSRF header, transport choice) and the domain modules: accounts and oauth (IdentityService),
privacy (PrivacyService), ratelimit (Envoy's RateLimitService)."""

from __future__ import annotations

import json
import math

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.api import httpbody_pb2
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from openhr.identity.v1 import identity_pb2, identity_pb2_grpc
from services.common.auth import bearer_token, current_principal
from services.identity import cookies
from services.identity.accounts import Accounts, Session
from services.identity.keys import KeyRing
from services.identity.oauth import OAuth
from services.identity.privacy import Privacy
from services.identity.ratelimit import EdgeLimits
from services.identity.tokens import session_of

TOKEN_TYPE = "Bearer"
# Token answers must not be stored by browsers or proxies.
_NO_STORE = ("cache-control", "no-store")
# Keys are published PUBLISH_AHEAD (10 min) before they sign: five minutes of caching is safe.
_JWKS_CACHE = ("cache-control", "public, max-age=300")


def _timestamp(session: Session) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(session.refresh.expires_at)
    return stamp


async def _answer_tokens(
    context: grpc.aio.ServicerContext, session: Session, by_cookie: bool, csrf_key: bytes
) -> identity_pb2.Tokens:
    """The Tokens message; by cookie: the refresh token goes to set-cookie, not the body."""
    metadata = [_NO_STORE, *(cookies.issue(session.refresh.token, csrf_key) if by_cookie else ())]
    await context.send_initial_metadata(metadata)
    return identity_pb2.Tokens(
        access_token=session.access_token,
        token_type=TOKEN_TYPE,
        expires_in=session.expires_in,
        refresh_token="" if by_cookie else session.refresh.token,
        refresh_expire_time=_timestamp(session),
        user_id=session.user_id,
    )


def _transport(context: grpc.aio.ServicerContext) -> cookies.Request:
    return cookies.Request.from_metadata(context.invocation_metadata() or ())


class IdentityApi(identity_pb2_grpc.IdentityServiceServicer):
    """Email + password accounts, sign-in with GitHub or Google (services.identity.oauth), tokens."""

    def __init__(self, accounts: Accounts, keys: KeyRing, oauth: OAuth, csrf_key: bytes) -> None:
        """`csrf_key`: the HMAC key that binds browser CSRF tokens to refresh tokens (cookies.py)."""
        self._accounts, self._keys, self._oauth, self._csrf_key = accounts, keys, oauth, csrf_key

    async def SignUp(self, request, context):
        session, sent = await self._accounts.sign_up(request.email, request.password, request.display_name)
        tokens = await _answer_tokens(context, session, _transport(context).wants_cookie, self._csrf_key)
        return identity_pb2.SignUpResponse(tokens=tokens, verification_sent=sent)

    async def Login(self, request, context):
        session = await self._accounts.login(request.email, request.password)
        tokens = await _answer_tokens(context, session, _transport(context).wants_cookie, self._csrf_key)
        return identity_pb2.LoginResponse(tokens=tokens)

    async def Refresh(self, request, context):
        transport = _transport(context)
        by_cookie = not request.refresh_token
        token = request.refresh_token or transport.refresh_from_cookie(self._csrf_key)
        session = await self._accounts.refresh(token)
        tokens = await _answer_tokens(context, session, transport.wants_cookie or by_cookie, self._csrf_key)
        return identity_pb2.RefreshResponse(tokens=tokens)

    async def Logout(self, request, context):
        transport = _transport(context)
        by_cookie = not request.refresh_token
        token = request.refresh_token or transport.refresh_from_cookie(self._csrf_key)
        await self._accounts.logout(token, everywhere=request.everywhere)
        if by_cookie:
            await context.send_initial_metadata(cookies.clear())
        return identity_pb2.LogoutResponse()

    async def VerifyEmail(self, request, context):
        await self._accounts.verify_email(request.token)
        return identity_pb2.VerifyEmailResponse()

    async def ResendVerificationEmail(self, request, context):
        sent = await self._accounts.resend_verification(current_principal().user_id)
        return identity_pb2.ResendVerificationEmailResponse(verification_sent=sent)

    async def RequestPasswordReset(self, request, context):
        await self._accounts.request_password_reset(request.email)
        return identity_pb2.RequestPasswordResetResponse()

    async def ResetPassword(self, request, context):
        await self._accounts.reset_password(request.token, request.new_password)
        return identity_pb2.ResetPasswordResponse()

    async def ChangePassword(self, request, context):
        principal = current_principal()  # the interceptor verified the access token
        await self._accounts.change_password(
            principal.user_id, session_of(principal.token), request.current_password, request.new_password
        )
        return identity_pb2.ChangePasswordResponse()

    async def StartOAuth(self, request, context):
        url, state = await self._oauth.start(request.provider, request.redirect_uri)
        await context.send_initial_metadata([_NO_STORE])
        return identity_pb2.StartOAuthResponse(authorization_url=url, state=state)

    async def CompleteOAuth(self, request, context):
        """Signs in; links the provider to the caller's account when the request carries the
        caller's access token (`authorization: Bearer …`)."""
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        result = await self._oauth.complete(request.provider, request.code, request.state, bearer_token(metadata))
        tokens = await _answer_tokens(context, result.session, _transport(context).wants_cookie, self._csrf_key)
        return identity_pb2.CompleteOAuthResponse(tokens=tokens, created=result.created)

    async def GetJwks(self, request, context):
        document = await self._keys.jwks()
        await context.send_initial_metadata([_JWKS_CACHE])
        return httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(document).encode())


class PrivacyApi(identity_pb2_grpc.PrivacyServiceServicer):
    """Export and erasure of everything OpenHR holds about the caller (services.identity.privacy)."""

    def __init__(self, privacy: Privacy) -> None:
        self._privacy = privacy

    async def ExportMyData(self, request, context):
        data = struct_pb2.Struct()
        data.update(await self._privacy.export(current_principal().user_id))
        stamp = timestamp_pb2.Timestamp()
        stamp.GetCurrentTime()
        await context.send_initial_metadata([_NO_STORE])
        return identity_pb2.ExportMyDataResponse(data=data, export_time=stamp)

    async def DeleteMe(self, request, context):
        await self._privacy.delete_user(current_principal().user_id)
        return identity_pb2.DeleteMeResponse()


def _duration(seconds: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=max(0, math.ceil(seconds)))


class RateLimitApi(rls_pb2_grpc.RateLimitServiceServicer):
    """ShouldRateLimit for Envoy's ratelimit filter (domain "openhr"; services.identity.ratelimit)."""

    def __init__(self, limits: EdgeLimits) -> None:
        self._limits = limits

    async def ShouldRateLimit(self, request, context):
        Code = rls_pb2.RateLimitResponse.Code
        statuses = [rls_pb2.RateLimitResponse.DescriptorStatus(code=Code.OK) for _ in request.descriptors]
        descriptors = [{e.key: e.value for e in d.entries} for d in request.descriptors]
        verdicts = await self._limits.check(request.domain, descriptors, request.hits_addend)
        for verdict in verdicts:
            statuses[verdict.index].CopyFrom(
                rls_pb2.RateLimitResponse.DescriptorStatus(
                    code=Code.OVER_LIMIT if verdict.over else Code.OK,
                    current_limit=rls_pb2.RateLimitResponse.RateLimit(
                        name=verdict.name,
                        requests_per_unit=verdict.limit,
                        unit=rls_pb2.RateLimitResponse.RateLimit.MINUTE,
                    ),
                    limit_remaining=max(0, verdict.limit - verdict.count),
                    duration_until_reset=_duration(verdict.reset_after),
                )
            )
        retry_after = max((v.reset_after for v in verdicts if v.over), default=0.0)
        if not retry_after:
            return rls_pb2.RateLimitResponse(overall_code=Code.OK, statuses=statuses)
        seconds = max(1, math.ceil(retry_after))
        return rls_pb2.RateLimitResponse(
            overall_code=Code.OVER_LIMIT,
            statuses=statuses,
            response_headers_to_add=[base_pb2.HeaderValue(key="retry-after", value=str(seconds))],
            raw_body=f"too many requests: retry in {seconds} s".encode(),
        )
