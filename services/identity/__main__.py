"""python -m services.identity: runs the identity service until SIGTERM."""

import sys

from services.common.runner import serve
from services.identity.app import IdentitySettings, build
from services.identity.crypto import MissingSecretError

if __name__ == "__main__":
    try:
        serve("identity", IdentitySettings(), build)
    except MissingSecretError as exc:
        print(f"identity: {exc}", file=sys.stderr)
        sys.exit(2)
