"""Render the Envoy edge config from ``envoy.yaml.j2``.

Library::

    from edge.envoy.render import render
    yaml_text = render(listen_port=8080, admin_port=9901,
                       descriptor_path="gen/openhr.binpb",
                       clusters=[{"name": "profile", "host": "127.0.0.1", "port": 50061},
                                 {"name": "validation", "host": "127.0.0.1", "port": 50069}])

CLI::

    python -m edge.envoy.render --out gen/envoy.yaml --listen-port 8080 \\
        --admin-port 9901 --descriptor gen/openhr.binpb \\
        --cluster profile=127.0.0.1:50061 --cluster enrichment=127.0.0.1:50064 \\
        --cluster validation=127.0.0.1:50069 \\
        --cors-origin http://localhost:5173 --cors-origin 'regex:^http://127\\.0\\.0\\.1:[0-9]+$'

A ``--cors-origin`` is an exact origin unless it starts with ``regex:`` (RE2, whole header).
``--web-root edge/web/dist`` serves the built browser app from the same origin (see ``web_routes``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from edge import openapi
from edge.envoy import local_replies
from services.common import surface
from services.common.edge_rates import EdgeRates
from services.common.service_auth import EDGE_NAME, ServiceTokenIssuer

TEMPLATE_DIR = Path(__file__).resolve().parent
TEMPLATE_NAME = "envoy.yaml.j2"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def known_clusters() -> tuple[str, ...]:
    """Cluster names the template knows: the service clusters it routes to, then the edge's
    own helpers (``validation``: the REST body validator, routed no public service)."""
    return (*surface.PUBLIC_SERVICES, *surface.EDGE_CLUSTERS)


def _normalise_clusters(clusters: Sequence[Any]) -> list[dict[str, Any]]:
    known = known_clusters()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for c in clusters:
        c = dict(c)
        name = c.get("name")
        if name not in known:
            raise ValueError(f"unknown cluster {name!r}; known: {', '.join(known)}")
        if name in seen:
            raise ValueError(f"cluster {name!r} given twice")
        seen.add(name)
        if not c.get("host"):
            raise ValueError(f"cluster {name!r} has no host")
        c["port"] = int(c["port"])
        out.append(c)
    return out


def streaming_paths(descriptor_path: str | os.PathLike) -> list[str]:
    """gRPC paths of every server-streaming RPC in the descriptor set: their routes get no
    timeout (the stream idle timeout bounds them instead). Read from the contracts, so a new
    stream needs no template change."""
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_path).read_bytes())
    return sorted(
        f"/{file.package}.{service.name}/{method.name}"
        for file in descriptors.file
        for service in file.service
        for method in service.method
        if method.server_streaming
    )


_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


def _template_regex(template: str) -> str:
    """RE2 for the paths a google.api.http path template matches (the part before any query)."""
    out, position = [], 0
    for match in _VARIABLE.finditer(template):
        out.append(re.escape(template[position : match.start()]))
        pattern = match.group(2) or "*"
        out.append(
            "/".join(
                ".+" if segment == "**" else "[^/]+" if segment == "*" else re.escape(segment)
                for segment in pattern.split("/")
            )
        )
        position = match.end()
    out.append(re.escape(template[position:]))
    return "".join(out)


def http_routes(descriptor_path: str | os.PathLike, services: Sequence[str]) -> list[dict[str, str]]:
    """The REST routes (google.api.http, additional bindings included) of the given services'
    methods: {service, rpc, method, template, path_regex, regex}.

    One spelling of a route is what the transcoder accepts: HCM normalizes the path first
    (percent-encoded unreserved characters decoded, dot segments resolved, slashes merged) but
    the transcoder also takes the path with a trailing slash, so every regex here tolerates one
    too. `path_regex` matches the path alone (for a ":path" header add the query), `regex` is
    anchored (a route match never sees the query)."""
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(Path(descriptor_path).read_bytes())
    wanted = set(services)
    routes = []
    for file in descriptors.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}"
            if full_name not in wanted:
                continue
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                for binding in (rule, *rule.additional_bindings):
                    verb = binding.WhichOneof("pattern")
                    if verb in (None, "custom"):
                        continue
                    template = getattr(binding, verb)
                    path_regex = _template_regex(template) + "/?"
                    routes.append(
                        {
                            "service": full_name,
                            "rpc": method.name,
                            "method": verb.upper(),
                            "template": template,
                            "path_regex": path_regex,
                            "regex": f"^{path_regex}$",
                        }
                    )
    return routes


def public_http_routes(descriptor_path: str | os.PathLike) -> list[dict[str, str]]:
    """The REST routes of identity's public methods, for jwt_authn's rules and the sign-in /
    sign-up rate limits (see http_routes)."""
    routes = http_routes(descriptor_path, [surface.IDENTITY_SERVICE])
    return [route for route in routes if route["rpc"] in surface.IDENTITY_PUBLIC_METHODS]


def protected_http_routes(descriptor_path: str | os.PathLike, services: Sequence[str]) -> list[dict[str, str]]:
    """The REST routes of `services` that need a token (all but identity's public methods), one
    {methods, regex} per path (methods: an anchored RE2 of its HTTP methods): jwt_authn asks a
    token of these alone, so a path that is no route answers 404 before authentication. (One
    rule per path: Envoy refuses a regex of all of them, RE2 program size above 100.)"""
    public = {(r["method"], r["template"]) for r in public_http_routes(descriptor_path)}
    by_path: dict[str, set[str]] = {}
    for route in http_routes(descriptor_path, services):
        if (route["method"], route["template"]) not in public:
            by_path.setdefault(route["regex"], set()).add(route["method"])
    return [{"methods": f"^({'|'.join(sorted(m))})$", "regex": regex} for regex, m in sorted(by_path.items())]


# --- the browser app (web_root) -------------------------------------------------------------------
# Envoy serves the built files of edge/web (Vite's dist/) itself: one route per file, each a
# direct_response whose body Envoy reads from the file when it loads the config. The app's own
# paths (links in mails, the OAuth callback, deep links) answer index.html; the router in the
# page picks the screen.
WEB_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}
# Vite names everything under assets/ by its content hash: cached for good. Anything else
# (index.html above all) is revalidated on every load, so a deploy takes effect at once.
WEB_IMMUTABLE_DIR = "assets"
WEB_CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
WEB_CACHE_REVALIDATE = "no-cache"
# Paths the app routes itself (identity mails /verify-email and /reset-password links and sends
# OAuth sign-ins back to /auth/callback): exact paths, and prefixes ending in "/".
WEB_APP_PATHS = ("/", "/verify-email", "/reset-password", "/auth/callback", "/app", "/app/")
# Scripts, styles and calls from this origin only; images also from https (GitHub and Google
# avatars) and data: URLs; no plugins, no framing, no <base>, forms post only here.
WEB_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def web_routes(web_root: str | os.PathLike, oauth_providers: Sequence[str] = ()) -> list[dict[str, str]]:
    """The routes serving a built web app: one per file of `web_root` (path, file or inline
    body, content type, cache policy), the app's own paths answering its index.html, and
    /config.json: what the page offers that depends on this deployment (the sign-in providers
    configured). A file type the edge does not know is an error (it would be served wrong)."""
    root = Path(web_root).resolve()
    index = root / "index.html"
    if not index.is_file():
        raise ValueError(f"web_root {root} has no index.html: build the app first (make web)")
    routes = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if relative.parts[0].startswith("."):
            continue  # build metadata (.vite/manifest.json), not for browsers
        content_type = WEB_CONTENT_TYPES.get(path.suffix)
        if content_type is None:
            raise ValueError(f"web_root: no content type for {relative} (add it to WEB_CONTENT_TYPES)")
        immutable = relative.parts[0] == WEB_IMMUTABLE_DIR
        routes.append(
            {
                "match": "path",
                "path": "/" + relative.as_posix(),
                "file": str(path),
                "content_type": content_type,
                "cache_control": WEB_CACHE_IMMUTABLE if immutable else WEB_CACHE_REVALIDATE,
            }
        )
    for app_path in WEB_APP_PATHS:
        prefix = app_path.endswith("/") and app_path != "/"
        routes.append(
            {
                "match": "prefix" if prefix else "path",
                "path": app_path,
                "file": str(index),
                "content_type": WEB_CONTENT_TYPES[".html"],
                "cache_control": WEB_CACHE_REVALIDATE,
            }
        )
    routes.append(
        {
            "match": "path",
            "path": "/config.json",
            "inline": json.dumps({"oauthProviders": list(oauth_providers)}, separators=(",", ":")),
            "content_type": WEB_CONTENT_TYPES[".json"],
            "cache_control": WEB_CACHE_REVALIDATE,
        }
    )
    return routes


# --- the API's own pages -------------------------------------------------------------------------
# Served in every mode without a token: the OpenAPI document (generated from the same descriptor
# set the transcoder loads, inlined in the config, so it always describes the routes this Envoy
# serves), the health path for load balancers, and, given docs_root (`make docs`), the API
# reference page (Swagger UI) over that document.
OPENAPI_PATH = "/openapi.json"
HEALTH_PATH = "/healthz"
DOCS_PATH = "/docs"
DOCS_DIST = Path(__file__).resolve().parents[1] / "docs" / "dist"
# Swagger UI sets style attributes and draws data: images: it needs inline styles, nothing else.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
# A JSON document and a plain answer: no script may run in them.
NO_CONTENT_CSP = "default-src 'none'; frame-ancestors 'none'"


def api_routes(descriptor_source: str | os.PathLike, docs_root: str | os.PathLike | None) -> list[dict[str, str]]:
    """/openapi.json, /healthz (200 as long as Envoy serves: see README, "Health") and, with a
    docs_root, /docs and its files."""
    document = json.dumps(openapi.generate(descriptor_source), separators=(",", ":"), ensure_ascii=False)
    routes = [
        {
            "match": "path",
            "path": OPENAPI_PATH,
            "inline": document,
            "content_type": WEB_CONTENT_TYPES[".json"],
            "cache_control": WEB_CACHE_REVALIDATE,
            "csp": NO_CONTENT_CSP,
        },
        {
            "match": "path",
            "path": HEALTH_PATH,
            "inline": "ok\n",
            "content_type": WEB_CONTENT_TYPES[".txt"],
            "cache_control": "no-store",
            "csp": NO_CONTENT_CSP,
        },
    ]
    if docs_root is None:
        return routes
    root = Path(docs_root).resolve()
    if not (root / "index.html").is_file():
        raise ValueError(f"docs_root {root} has no index.html: build the page first (make docs)")
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        content_type = WEB_CONTENT_TYPES.get(path.suffix)
        if content_type is None:
            raise ValueError(f"docs_root: no content type for {path.name} (add it to WEB_CONTENT_TYPES)")
        routes.append(
            {
                "match": "path",
                "path": DOCS_PATH if path.name == "index.html" else f"{DOCS_PATH}/{path.name}",
                "file": str(path),
                "content_type": content_type,
                "cache_control": WEB_CACHE_REVALIDATE,
                "csp": DOCS_CSP,
            }
        )
    return routes


# The edge's token to identity's RateLimitService lives until Envoy's config is rendered again.
EDGE_TOKEN_LIFETIME = 365 * 86400


def edge_token(service_keys: str | os.PathLike) -> str:
    """A service token of the edge ("envoy"), signed with `<service_keys>/envoy.pem`: Envoy sends
    it with every rate-limit call (identity's RateLimitService answers nobody else)."""
    issuer = ServiceTokenIssuer.from_dir(Path(service_keys), EDGE_NAME)
    if issuer is None:
        raise ValueError(f"rate limits need the edge's service key {Path(service_keys) / (EDGE_NAME + '.pem')}")
    return issuer.mint(EDGE_TOKEN_LIFETIME)


def render(**values: Any) -> str:
    """Render the template. See the variable list at the top of envoy.yaml.j2; besides those,
    ``descriptor_source``: the descriptor set to read when Envoy's ``descriptor_path`` is not a
    path on this machine, and ``service_keys`` (a directory): the edge's key that signs its
    rate-limit calls (or pass ``rate_limit_token``), and ``edge_rates``: the per-address and per-user
    limits (services.common.edge_rates.EdgeRates; default: its defaults)."""
    rates = values.pop("edge_rates", None) or EdgeRates()
    values.update(rate_ip_per_min=rates.ip_per_min, rate_user_per_min=rates.user_per_min)
    values["clusters"] = _normalise_clusters(values.get("clusters") or [])
    has_identity = any(c["name"] == "identity" for c in values["clusters"])
    for switch in ("auth", "rate_limits"):
        if values.get(switch) is None:
            values[switch] = has_identity
        elif values[switch] and not has_identity:
            raise ValueError(f"{switch} needs the identity cluster (it serves the JWKS and the RateLimitService)")
    service_keys = values.pop("service_keys", None)
    if values["rate_limits"] and not values.get("rate_limit_token"):
        if service_keys is None:
            raise ValueError("rate limits need service_keys (the edge's key) or a rate_limit_token")
        values["rate_limit_token"] = edge_token(service_keys)
    values["descriptor_path"] = os.fspath(values["descriptor_path"])
    # The descriptor set read now; descriptor_path is where Envoy finds it (in Kubernetes a path
    # inside its container, while the renderer reads the same set from gen/).
    source = values.pop("descriptor_source", None) or values["descriptor_path"]
    values["streaming_paths"] = streaming_paths(source)
    values["public_http_routes"] = public_http_routes(source)
    values.update(
        PUBLIC_SERVICES=surface.PUBLIC_SERVICES,
        EDGE_CLUSTERS=surface.EDGE_CLUSTERS,
        IDENTITY_SERVICE=surface.IDENTITY_SERVICE,
        IDENTITY_PUBLIC_METHODS=surface.IDENTITY_PUBLIC_METHODS,
        UPLOAD_BUFFERS={path: surface.upload_buffer_limit(size) for path, size in surface.UPLOADS.items()},
    )
    services = [service for c in values["clusters"] for service in surface.PUBLIC_SERVICES.get(c["name"], ())]
    values["protected_http_routes"] = protected_http_routes(source, services)
    values["LOCAL_REPLIES"] = local_replies.values()
    web_root, providers = values.pop("web_root", None), values.pop("oauth_providers", None)
    web = [{**route, "csp": WEB_CSP} for route in web_routes(web_root, providers or ())] if web_root else []
    values["static_routes"] = api_routes(source, values.pop("docs_root", None)) + web
    # Envoy refuses a direct_response body above the route config's limit (default 4 KiB).
    values["static_max_body"] = max(
        Path(route["file"]).stat().st_size if "file" in route else len(route["inline"].encode())
        for route in values["static_routes"]
    )
    values.setdefault("access_log_path", "/dev/stdout")
    values.setdefault("cors_allowed_origins", [])
    return _env.get_template(TEMPLATE_NAME).render(**values)


def _parse_cluster(text: str) -> dict[str, Any]:
    try:
        name, hostport = text.split("=", 1)
        host, port = hostport.rsplit(":", 1)
        host = host.strip("[]")  # allow [::1]:50061
        return {"name": name, "host": host, "port": int(port)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected name=host:port, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m edge.envoy.render",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output path ('-' for stdout)")
    p.add_argument("--listen-address", default="0.0.0.0")
    p.add_argument("--listen-port", type=int, required=True)
    p.add_argument("--admin-address", default="127.0.0.1")
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--descriptor", required=True, help="FileDescriptorSet from `buf build`")
    p.add_argument(
        "--cluster",
        type=_parse_cluster,
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="a running service cluster, or the edge's validation cluster (repeatable)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allowed browser origin: exact, or 'regex:<RE2>' (repeatable)",
    )
    p.add_argument("--web-root", help="built browser app (edge/web/dist) to serve from this origin")
    p.add_argument(
        "--oauth-provider", action="append", default=[], help="with --web-root: a configured sign-in provider"
    )
    p.add_argument("--docs-root", help="built API reference page (make docs: edge/docs/dist) to serve at /docs")
    p.add_argument("--access-log-path", default="/dev/stdout")
    p.add_argument(
        "--dns-type",
        choices=["STATIC", "STRICT_DNS", "LOGICAL_DNS"],
        help="force the cluster discovery type (default: STATIC for IPs, else STRICT_DNS)",
    )
    p.add_argument("--stream-idle-timeout", default="300s")
    p.add_argument("--rate-limit-timeout", help="deadline of each rate-limit call (the template's default: 0.25s)")
    p.add_argument("--validation-timeout", help="deadline of the REST body validator (the template's default: 0.5s)")
    p.add_argument("--jwt-issuer", default="openhr-identity", help="required iss (OPENHR_JWT_ISSUER)")
    p.add_argument("--jwt-audience", default="openhr", help="required aud (OPENHR_JWT_AUDIENCE)")
    p.add_argument(
        "--no-auth", dest="auth", action="store_false", default=None, help="no jwt_authn (services still verify)"
    )
    p.add_argument("--no-rate-limits", dest="rate_limits", action="store_false", default=None)
    p.add_argument(
        "--service-keys",
        help="OPENHR_SERVICE_KEYS directory holding envoy.pem: signs the edge's token to the rate-limit service",
    )
    p.add_argument(
        "--trusted-hops", type=int, default=0, help="load balancers in front that append X-Forwarded-For (default 0)"
    )
    p.add_argument("--descriptor-source", help="descriptor set to read when --descriptor is Envoy's path, not ours")
    p.add_argument("--tls-cert", help="PEM certificate chain: the edge listener speaks TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--ops-port", type=int, help="plaintext listener for /ready, /stats/prometheus and the JWKS")
    args = p.parse_args(argv)

    values: dict[str, Any] = {
        "listen_address": args.listen_address,
        "listen_port": args.listen_port,
        "admin_address": args.admin_address,
        "admin_port": args.admin_port,
        "descriptor_path": os.path.abspath(args.descriptor),
        "clusters": args.cluster,
        "cors_allowed_origins": args.cors_origin,
        "access_log_path": args.access_log_path,
        "stream_idle_timeout": args.stream_idle_timeout,
        "jwt_issuer": args.jwt_issuer,
        "jwt_audience": args.jwt_audience,
        "auth": args.auth,
        "rate_limits": args.rate_limits,
        "trusted_hops": args.trusted_hops,
        "service_keys": args.service_keys,
        # OPENHR_RATE_IP_PER_MIN / OPENHR_RATE_USER_PER_MIN of this environment.
        "edge_rates": EdgeRates.from_env(os.environ),
    }
    for name in ("dns_type", "rate_limit_timeout", "validation_timeout"):
        if getattr(args, name):
            values[name] = getattr(args, name)
    if args.web_root:
        values["web_root"] = args.web_root
        values["oauth_providers"] = args.oauth_provider
    if args.docs_root:
        values["docs_root"] = args.docs_root
    if args.descriptor_source:
        values["descriptor_path"] = args.descriptor
        values["descriptor_source"] = args.descriptor_source
    if args.tls_cert or args.tls_key:
        values.update(tls_cert_file=args.tls_cert, tls_key_file=args.tls_key)
    if args.ops_port:
        values["ops_port"] = args.ops_port
    try:
        text = render(**values)
    except ValueError as exc:
        p.error(str(exc))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
