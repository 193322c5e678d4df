"""python -m edge.identity: runs the identity service until SIGTERM."""

import sys

from edge.identity.app import IdentitySettings, build
from edge.identity.crypto import MissingSecretError
from services.common.runner import serve

if __name__ == "__main__":
    try:
        serve("identity", IdentitySettings(), build)
    except MissingSecretError as exc:
        print(f"identity: {exc}", file=sys.stderr)
        sys.exit(2)
