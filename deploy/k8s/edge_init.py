"""The Envoy pod's init step (deploy/k8s/base/edge/deployment.yaml), run from the app image:
copies the contracts' descriptor set the transcoder loads, and writes Envoy's config from the
ConfigMap's rendering with the edge's service token in place of its placeholder. The token
(which identity's RateLimitService requires) is minted from the edge's private key, mounted
from the Secret openhr-envoy-service-key, so no token is ever in a ConfigMap or the repository.

    python -m deploy.k8s.edge_init --template /etc/envoy-template/envoy.yaml \
        --out /etc/envoy/envoy.yaml --keys /etc/openhr/service-keys \
        --descriptor /app/gen/openhr.binpb --descriptor-out /etc/openhr/contracts/openhr.binpb
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from edge.envoy.render import edge_token

# What deploy/k8s/envoy_config.py renders where the token goes.
TOKEN_PLACEHOLDER = "OPENHR_EDGE_SERVICE_TOKEN"


def write_config(template: Path, out: Path, keys: Path) -> None:
    text = template.read_text()
    if text.count(TOKEN_PLACEHOLDER) != 1:
        raise ValueError(f"{template} must hold the token placeholder exactly once")
    out.write_text(text.replace(TOKEN_PLACEHOLDER, edge_token(keys)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--keys", type=Path, required=True, help="directory holding envoy.pem")
    parser.add_argument("--descriptor", type=Path, required=True)
    parser.add_argument("--descriptor-out", type=Path, required=True)
    args = parser.parse_args(argv)
    shutil.copyfile(args.descriptor, args.descriptor_out)
    write_config(args.template, args.out, args.keys)


if __name__ == "__main__":
    main()
