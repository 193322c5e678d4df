"""The edge serves the browser app (edge/envoy: web_root) from the same origin, without a token:
each built file with its type and cache policy, the app's own paths answering index.html, every
answer with a Content-Security-Policy, while API paths keep their REST answers."""

from __future__ import annotations

import httpx

from deploy.local.stack import WEB_DIST
from edge.envoy.render import WEB_APP_PATHS, WEB_CSP


def _asset(suffix: str) -> str:
    return "/assets/" + next(p.name for p in (WEB_DIST / "assets").iterdir() if p.suffix == suffix)


async def test_index_and_app_paths_answer_index_html_without_a_token(rest: httpx.AsyncClient):
    index = (WEB_DIST / "index.html").read_bytes()
    for path in [*WEB_APP_PATHS, "/app/messages/123", "/verify-email?token=abc"]:
        response = await rest.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.content == index, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["content-security-policy"] == WEB_CSP
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_hashed_assets_are_immutable_with_their_types(rest: httpx.AsyncClient):
    script, style = _asset(".js"), _asset(".css")
    response = await rest.get(script)
    assert response.status_code == 200
    assert response.content == (WEB_DIST / script.lstrip("/")).read_bytes()  # larger than Envoy's 4 KiB default
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    response = await rest.get(style)
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    head = await rest.head(script)
    assert head.status_code == 200 and head.content == b""


async def test_config_names_the_configured_sign_in_providers(rest: httpx.AsyncClient):
    # The session mesh's identity is configured for both stand-in providers (tests/conftest.py).
    response = await rest.get("/config.json")
    assert response.status_code == 200
    assert response.json() == {"oauthProviders": ["github", "google"]}


async def test_api_paths_keep_their_answers(rest: httpx.AsyncClient):
    # Without a token, an API route is refused; a path that is neither a page nor a route is a
    # 404 before authentication (no token asked for it), never index.html.
    assert (await rest.get("/v1/me:export")).status_code == 401
    for method, path in (("GET", "/v1/no-such-route"), ("GET", "/assets/missing.js"), ("POST", "/")):
        unknown = await rest.request(method, path, json={} if method == "POST" else None)
        assert unknown.status_code == 404 and unknown.json()["code"] == 5, (method, path, unknown.text)
        assert "content-security-policy" not in unknown.headers
