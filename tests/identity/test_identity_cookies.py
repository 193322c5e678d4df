"""Browsers: the refresh token in an HttpOnly, Secure, SameSite=Strict `__Host-` cookie, and a
CSRF token bound to it on refresh and sign-out, through the real Envoy."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest

from deploy.local.ephemeral import Mesh
from services.identity import cookies
from tests.identity.support import claims, new_email, refresh
from tests.users import PASSWORD

COOKIE_MODE = {"x-openhr-token-transport": "cookie"}


@pytest.fixture
async def browser(mesh: Mesh):
    """A client of its own: tests send the Cookie header themselves, as a browser would to an
    https:// origin (these cookies are Secure, so no jar returns them to the http test edge)."""
    async with httpx.AsyncClient(base_url=mesh.edge_url, timeout=10) as client:
        yield client


def _cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    jar = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            jar[name] = morsel
    return jar


def _cookie_header(jar: dict) -> str:
    return "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())


async def _sign_up_by_cookie(browser: httpx.AsyncClient) -> tuple[dict, dict]:
    response = await browser.post(
        "/v1/auth/signup", json={"email": new_email("cookie"), "password": PASSWORD}, headers=COOKIE_MODE
    )
    assert response.status_code == 200, response.text
    return response.json()["tokens"], _cookies(response)


async def test_cookie_mode_sets_an_http_only_refresh_cookie_and_a_csrf_cookie(browser) -> None:
    tokens, jar = await _sign_up_by_cookie(browser)
    assert tokens["refreshToken"] == "" and tokens["accessToken"]
    refresh_cookie, csrf_cookie = jar[cookies.REFRESH_COOKIE], jar[cookies.CSRF_COOKIE]
    assert refresh_cookie.value and csrf_cookie.value
    assert refresh_cookie["httponly"] is True and refresh_cookie["secure"] is True
    assert refresh_cookie["samesite"] == "Strict" and refresh_cookie["path"] == "/"
    assert refresh_cookie["max-age"] == str(7 * 24 * 3600)
    assert not csrf_cookie["httponly"], "the page's script must read the CSRF token"
    assert csrf_cookie["secure"] is True and csrf_cookie["samesite"] == "Strict"


async def test_refresh_by_cookie_needs_the_csrf_header(browser) -> None:
    _tokens, jar = await _sign_up_by_cookie(browser)
    cookie = {"cookie": _cookie_header(jar)}
    csrf = jar[cookies.CSRF_COOKIE].value

    missing = await browser.post("/v1/auth/refresh", json={}, headers=cookie)
    assert missing.status_code == 403, missing.text
    wrong = await browser.post("/v1/auth/refresh", json={}, headers={**cookie, "x-csrf-token": csrf[::-1] + "x"})
    assert wrong.status_code == 403, wrong.text

    rotated = await browser.post("/v1/auth/refresh", json={}, headers={**cookie, "x-csrf-token": csrf})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["tokens"]["refreshToken"] == "", "a refresh by cookie answers by cookie"
    new_jar = _cookies(rotated)
    assert new_jar[cookies.REFRESH_COOKIE].value != jar[cookies.REFRESH_COOKIE].value
    assert new_jar[cookies.CSRF_COOKIE].value != csrf
    # The rejected attempts spent nothing: the first cookie was live until this rotation, and is
    # now spent (presenting it again is reuse).
    again = await browser.post("/v1/auth/refresh", json={}, headers={**cookie, "x-csrf-token": csrf})
    assert again.status_code == 401, again.text


async def test_logout_by_cookie_clears_the_cookies(browser) -> None:
    _tokens, jar = await _sign_up_by_cookie(browser)
    cookie = {"cookie": _cookie_header(jar)}
    csrf = jar[cookies.CSRF_COOKIE].value
    refused = await browser.post("/v1/auth/logout", json={}, headers=cookie)
    assert refused.status_code == 403, refused.text

    signed_out = await browser.post("/v1/auth/logout", json={}, headers={**cookie, "x-csrf-token": csrf})
    assert signed_out.status_code == 200, signed_out.text
    cleared = _cookies(signed_out)
    assert cleared[cookies.REFRESH_COOKIE].value == "" and cleared[cookies.REFRESH_COOKIE]["max-age"] == "0"
    assert cleared[cookies.CSRF_COOKIE]["max-age"] == "0"
    assert (await refresh(browser, jar[cookies.REFRESH_COOKIE].value)).status_code == 401


async def test_bearer_clients_are_unaffected(browser) -> None:
    """A refresh token in the JSON body needs no CSRF header (no ambient credential), and an
    answer without cookie mode sets no cookie."""
    _tokens, jar = await _sign_up_by_cookie(browser)
    by_body = await refresh(browser, jar[cookies.REFRESH_COOKIE].value)
    assert by_body.status_code == 200, by_body.text
    tokens = by_body.json()["tokens"]
    assert tokens["refreshToken"] and by_body.headers.get_list("set-cookie") == []
    assert (await claims(browser, tokens["accessToken"]))["sub"] == tokens["userId"]


async def test_token_answers_are_not_cached(browser) -> None:
    response = await browser.post("/v1/auth/signup", json={"email": new_email(), "password": PASSWORD})
    assert response.headers["cache-control"] == "no-store"


async def test_a_planted_csrf_cookie_or_another_sessions_token_is_refused(browser) -> None:
    """Double submit alone trusts whichever CSRF cookie comes first, and any value the attacker
    planted (a sibling subdomain can set cookies): the token is bound to the refresh token the
    request presents instead, and a request with two of either cookie is refused."""
    _victim_tokens, victim = await _sign_up_by_cookie(browser)
    _attacker_tokens, attacker = await _sign_up_by_cookie(browser)
    refresh_name, csrf_name = cookies.REFRESH_COOKIE, cookies.CSRF_COOKIE
    planted = attacker[csrf_name].value
    attempts = [
        # The attacker's CSRF cookie first (a more specific Path sorts first), the victim's after.
        f"{csrf_name}={planted}; {refresh_name}={victim[refresh_name].value}; {csrf_name}={victim[csrf_name].value}",
        # Only the attacker's (it replaced the victim's).
        f"{refresh_name}={victim[refresh_name].value}; {csrf_name}={planted}",
    ]
    for cookie in attempts:
        answer = await browser.post("/v1/auth/refresh", json={}, headers={"cookie": cookie, "x-csrf-token": planted})
        assert answer.status_code == 403, (cookie, answer.text)
    # A second refresh cookie is ambiguous too, even with the right token for one of them.
    doubled = (
        f"{refresh_name}={attacker[refresh_name].value}; {refresh_name}={victim[refresh_name].value}; "
        f"{csrf_name}={victim[csrf_name].value}"
    )
    answer = await browser.post(
        "/v1/auth/refresh", json={}, headers={"cookie": doubled, "x-csrf-token": victim[csrf_name].value}
    )
    assert answer.status_code == 403, answer.text
    # The victim's own pair still works: nothing above spent it.
    own = await browser.post(
        "/v1/auth/refresh",
        json={},
        headers={"cookie": _cookie_header(victim), "x-csrf-token": victim[csrf_name].value},
    )
    assert own.status_code == 200, own.text
