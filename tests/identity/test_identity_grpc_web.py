"""One account's life over grpc-web (binary framing, as a browser's grpc-web client sends it)
through Envoy: sign-up in cookie mode, change of password with the access token, sign-in."""

from __future__ import annotations

import httpx

from deploy.local.ephemeral import Mesh
from openhr.identity.v1 import identity_pb2
from tests.grpcweb import DATA, HEADERS, TRAILERS, call_headers, frame, frames
from tests.identity.support import new_email
from tests.users import PASSWORD

SERVICE = "/openhr.identity.v1.IdentityService"


async def _call(rest: httpx.AsyncClient, method: str, request, headers: dict[str, str]) -> tuple[httpx.Response, list]:
    response = await rest.post(f"{SERVICE}/{method}", content=frame(request.SerializeToString()), headers=headers)
    assert response.status_code == 200, response.text
    return response, [f async for f in frames(response)]


async def test_account_over_grpc_web(mesh: Mesh, rest) -> None:
    email = new_email("grpcweb")
    response, received = await _call(
        rest,
        "SignUp",
        identity_pb2.SignUpRequest(email=email, password=PASSWORD, display_name="Web"),
        {**HEADERS, "x-openhr-token-transport": "cookie"},
    )
    assert [f.flag for f in received] == [DATA, TRAILERS] and received[1].trailers["grpc-status"] == "0"
    signed_up = identity_pb2.SignUpResponse.FromString(received[0].payload)
    assert signed_up.tokens.access_token and signed_up.tokens.refresh_token == ""
    assert signed_up.verification_sent
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("__Host-openhr_refresh=") and "HttpOnly" in c for c in cookies), cookies

    new_password = "harbour-violet-kettle"
    _, received = await _call(
        rest,
        "ChangePassword",
        identity_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=new_password),
        call_headers(signed_up.tokens.access_token),
    )
    assert received[-1].trailers["grpc-status"] == "0"

    _, received = await _call(
        rest, "Login", identity_pb2.LoginRequest(email=email, password=new_password), dict(HEADERS)
    )
    signed_in = identity_pb2.LoginResponse.FromString(received[0].payload)
    assert signed_in.tokens.user_id == signed_up.tokens.user_id and signed_in.tokens.refresh_token

    refused = await rest.post(
        f"{SERVICE}/Login",
        content=frame(identity_pb2.LoginRequest(email=email, password=PASSWORD).SerializeToString()),
        headers=HEADERS,
    )
    assert refused.headers["grpc-status"] == "16"  # UNAUTHENTICATED, trailers-only
