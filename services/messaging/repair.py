"""Operator repair: opens the conversation of a match by hand, through the internal
OpenConversation RPC, signed with messaging's own service key (OPENHR_SERVICE_KEYS).
Conversations normally open from MatchCreated; this is for a match whose event was lost, and
for trying chat locally before the matching service runs.

    python -m services.messaging.repair open-conversation <user-id> <user-id> [--match-id <uuid>]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

import grpc
from google.protobuf import json_format

from openhr.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from services.common.service_auth import ServiceTokenIssuer, ensure_service_key
from services.messaging.app import MessagingSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.messaging.repair", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    opening = commands.add_parser("open-conversation", help="open (or show) the conversation of a match")
    opening.add_argument("user_ids", nargs=2, metavar="user-id")
    opening.add_argument("--match-id", default="", help="default: a new match id")
    args = parser.parse_args(argv)
    settings = MessagingSettings()
    key_dir = Path(settings.service_keys)
    if settings.env == "local":
        ensure_service_key(key_dir, "messaging")
    issuer = ServiceTokenIssuer.from_dir(key_dir, "messaging")
    if issuer is None:
        print(f"error: no messaging service key in {key_dir}", file=sys.stderr)
        return 2
    request = messaging_pb2.OpenConversationRequest(match_id=args.match_id or str(uuid.uuid4()), user_ids=args.user_ids)
    with grpc.insecure_channel(f"{settings.grpc_host}:{settings.port}") as channel:
        try:
            response = messaging_pb2_grpc.MessagingInternalServiceStub(channel).OpenConversation(
                request, metadata=(("authorization", f"Bearer {issuer.token()}"),), timeout=10
            )
        except grpc.RpcError as exc:
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(json_format.MessageToJson(response.conversation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
