"""Extra Envoy instances for diagnosis: the mesh's own rendered edge config (data_dir/envoy.yaml) with a
change applied (e.g. no access log), on free ports, in front of the same services. Nothing outside the
benchmark's data dir is touched."""

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
