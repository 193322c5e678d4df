"""Renders the Envoy config of deploy/k8s from the one edge template (edge/envoy/envoy.yaml.j2),
into base/edge/envoy.yaml, which kustomize turns into the ConfigMap envoy-config:

    make manifests      # after a change to the template, the contracts or the services

Kubernetes mode: a STRICT_DNS cluster per service folder under base/services/, by the name of its
headless Service (every pod, not one connection per Service); TLS on the listener from the
Secret openhr-edge-tls; the admin API on loopback only; the ops listener for probes, Prometheus
and the services' JWKS. tests/deploy checks that the checked-in file is this rendering, and
that Envoy accepts it (`envoy --mode validate`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.k8s.edge_init import TOKEN_PLACEHOLDER
from deploy.local.stack import DESCRIPTOR, SERVICES
from edge.envoy.render import render
from services.common.edge_rates import EdgeRates

K8S_DIR = Path(__file__).resolve().parent
BASE = K8S_DIR / "base"
RENDERED = BASE / "edge" / "envoy.yaml"
ENV_FILE = BASE / "config" / "openhr.env"

# Paths and ports inside the Envoy pod (base/edge/envoy.yaml's Deployment mounts them).
LISTEN_PORT = 8443
ADMIN_PORT = 9901
OPS_PORT = 9902
DESCRIPTOR_PATH = "/etc/openhr/contracts/openhr.binpb"
TLS_DIR = "/etc/envoy/tls"


def deployed_services(base: Path = BASE) -> list[str]:
    """The services that have manifests (a folder under base/services/)."""
    return sorted(path.name for path in (base / "services").iterdir() if (path / "kustomization.yaml").exists())


def env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """NAME=value lines of a kustomize env file (comments and blank lines skipped)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def k8s_config(descriptor_source: Path = DESCRIPTOR, base: Path = BASE) -> str:
    ports = {service.name: service.port for service in SERVICES}
    names = deployed_services(base)
    missing = [name for name in names if name not in ports]
    if missing:
        raise ValueError(f"no port for {', '.join(missing)}: add it to deploy/local/stack.py SERVICES")
    return render(
        listen_address="0.0.0.0",
        listen_port=LISTEN_PORT,
        admin_address="127.0.0.1",
        admin_port=ADMIN_PORT,
        ops_port=OPS_PORT,
        descriptor_path=DESCRIPTOR_PATH,
        descriptor_source=descriptor_source,
        clusters=[{"name": name, "host": f"{name}-headless", "port": ports[name]} for name in names],
        tls_cert_file=f"{TLS_DIR}/tls.crt",
        tls_key_file=f"{TLS_DIR}/tls.key",
        # Same-origin only: a browser app on another origin needs its origin here (an overlay
        # renders its own file with --cors-origin and replaces the ConfigMap).
        cors_allowed_origins=[],
        # Behind a TCP load balancer that keeps the client address (externalTrafficPolicy Local).
        trusted_hops=0,
        # The pod's init step (deploy/k8s/edge_init.py) puts the edge's service token here.
        rate_limit_token=TOKEN_PLACEHOLDER,
        # The per-address and per-user limits live in Envoy: the same variables the services' config sets.
        edge_rates=EdgeRates.from_env(env_file(base / "config" / "openhr.env")),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.k8s.envoy_config", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RENDERED)
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR, help="descriptor set (make protos)")
    args = parser.parse_args(argv)
    args.out.write_text(k8s_config(args.descriptor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
