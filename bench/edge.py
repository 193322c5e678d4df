"""Extra Envoy instances for diagnosis: the mesh's own rendered edge config (data_dir/envoy.yaml) with a
change applied (e.g. no access log, or no jwt_authn + rate limits), on free ports, in front of the same
services. Nothing outside the benchmark's data dir is touched."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from deploy.local.infra import free_port


def _listener(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]


def _hcm(config: dict) -> dict:
    return _listener(config)["filter_chains"][0]["filters"][0]["typed_config"]


def without_access_log(config: dict) -> None:
    _hcm(config).pop("access_log", None)


AUTH_FILTERS = (
    "envoy.filters.http.jwt_authn",
    "envoy.filters.http.lua",
    "envoy.filters.http.local_ratelimit",
    "envoy.filters.http.ratelimit",
)

# The runtime keys of the local-reply mappers that answer a 429 (edge/envoy/envoy.yaml.j2).
LIMIT_REPLY_KEYS = ("edge.local_reply.grpc429", "edge.local_reply.rest429")


def _mentions(node, needles: tuple[str, ...]) -> bool:
    if isinstance(node, dict):
        return any(_mentions(k, needles) or _mentions(v, needles) for k, v in node.items())
    if isinstance(node, list):
        return any(_mentions(v, needles) for v in node)
    return isinstance(node, str) and any(n in node for n in needles)


def _strip_route_auth(node) -> None:
    """Per-route / per-virtual-host settings that only the auth filters read."""
    if isinstance(node, dict):
        node.pop("rate_limits", None)
        per_filter = node.get("typed_per_filter_config")
        if isinstance(per_filter, dict):
            for name in AUTH_FILTERS:
                per_filter.pop(name, None)
            if not per_filter:
                node.pop("typed_per_filter_config")
        for value in node.values():
            _strip_route_auth(value)
    elif isinstance(node, list):
        for value in node:
            _strip_route_auth(value)


def without_auth_and_rate_limits(config: dict) -> None:
    """The edge without `jwt_authn` and the rate limits (Envoy's local buckets, the retry-after Lua, the global
    call to identity's RateLimitService), and without what only exists for them: their local-reply mappers
    (jwt_authn's 401s, the answers to a 429), per-route settings and the `edge_jwks` cluster. Services still
    verify the bearer token."""
    hcm = _hcm(config)
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] not in AUTH_FILTERS]
    mappers = hcm.get("local_reply_config", {}).get("mappers")
    if mappers is not None:
        hcm["local_reply_config"]["mappers"] = [
            m for m in mappers if not _mentions(m, ("envoy.filters.http.jwt_authn", *LIMIT_REPLY_KEYS))
        ]
    _strip_route_auth(hcm.get("route_config", {}))
    clusters = config["static_resources"]["clusters"]
    config["static_resources"]["clusters"] = [c for c in clusters if c["name"] != "edge_jwks"]


def minimal_filters(config: dict) -> None:
    """Only what GET through REST needs: the transcoder and the router (no CORS, grpc-web, ext_proc, access
    log, early header mutation). Not a proposal: it shows what the rest of the edge config costs."""
    hcm = _hcm(config)
    hcm.pop("access_log", None)
    hcm.pop("early_header_mutation_extensions", None)
    hcm["http_filters"] = [
        f for f in hcm["http_filters"]
        if f["name"] in ("envoy.filters.http.grpc_json_transcoder", "envoy.filters.http.router")
    ]  # fmt: skip


def point_cluster(name: str, port: int):
    def change(config: dict) -> None:
        for cluster in config["static_resources"]["clusters"]:
            if cluster["name"] == name:
                endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
                endpoint["address"]["socket_address"]["port_value"] = port

    return change


def combine(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        for one in changes:
            one(config)

    return change


class ExtraEnvoy:
    def __init__(
        self, source: Path, name: str, change: Callable[[dict], None], log_dir: Path, args: list[str] = ()
    ) -> None:
        self.name, self.args = name, list(args)
        self.port, self.admin_port = free_port(), free_port()
        config = yaml.safe_load(source.read_text())
        change(config)
        _listener(config)["address"]["socket_address"]["port_value"] = self.port
        config["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        self.config_path = source.with_name(f"envoy-{name}.yaml")
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = log_dir / f"envoy-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> ExtraEnvoy:
        envoy = str(Path(sys.executable).with_name("envoy"))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [envoy, "-c", str(self.config_path), "--use-dynamic-base-id", "--log-level", "warn", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._healthy():
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"envoy {self.name} did not become ready:\n{self.log_path.read_text()[-2000:]}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/clusters", timeout=1) as response:
                text = response.read().decode()
        except OSError:
            return False
        flags = [line for line in text.splitlines() if "::health_flags::" in line]
        return bool(flags) and all(line.endswith("::healthy") for line in flags)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
