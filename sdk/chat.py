"""A terminal chat on the typed client: follows the caller's StreamEvents (reconnecting with
its cursor, so nothing is missed or repeated) and sends each line typed as a message.

    python -m sdk.chat --token "$TOKEN"                      # the most recent conversation
    python -m sdk.chat --token "$TOKEN" --conversation <id> --edge 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid

import grpc
import jwt

from openhr_client.openhr.messaging.v1 import (
    ListConversationsRequest,
    MarkReadRequest,
    MessagingServiceStub,
    SendMessageRequest,
    StreamEventsRequest,
)
from sdk.channel import authenticated_channel


def follow(stub: MessagingServiceStub, conversation_id: str, names: dict[str, str], me: str) -> None:
    """Prints the conversation's messages and typing as they arrive; resumes after a drop."""
    cursor = ""
    while True:
        try:
            for event in stub.stream_events(StreamEventsRequest(cursor=cursor)):
                cursor = event.cursor or cursor
                if event.message and event.message.message.conversation_id == conversation_id:
                    message = event.message.message
                    print(f"{names.get(message.sender_user_id, '?')}: {message.text}", flush=True)
                    if message.sender_user_id != me:
                        stub.mark_read(MarkReadRequest(conversation_id=conversation_id, seq=message.seq))
                elif event.typing and event.typing.conversation_id == conversation_id and event.typing.typing:
                    print(f"({names.get(event.typing.user_id, '?')} is typing)", flush=True)
        except grpc.RpcError as exc:
            print(f"(stream interrupted: {exc.code().name}; reconnecting)", file=sys.stderr, flush=True)
            time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdk.chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--token", required=True, help="an access token (make token USER=…, or sign in)")
    parser.add_argument("--edge", default="127.0.0.1:8080", help="Envoy's address (gRPC)")
    parser.add_argument("--conversation", default="", help="default: the most recent one")
    args = parser.parse_args(argv)
    unary = authenticated_channel(args.edge, args.token)
    streaming = authenticated_channel(args.edge, args.token, timeout=None)  # a stream has no deadline
    stub, listener = MessagingServiceStub(unary), MessagingServiceStub(streaming)
    conversations = stub.list_conversations(ListConversationsRequest()).conversations
    chosen = [c for c in conversations if not args.conversation or c.conversation_id == args.conversation]
    if not chosen:
        print("no such conversation: match with someone first", file=sys.stderr)
        return 1
    conversation = chosen[0]
    names = {p.user_id: p.display_name or p.user_id[:8] for p in conversation.participants}
    me = jwt.decode(args.token, options={"verify_signature": False})["sub"]  # our own token: who we are
    other = next(p.user_id for p in conversation.participants if p.user_id != me)
    print(f"chatting in {conversation.conversation_id} with {names[other]}; Ctrl-D quits")
    threading.Thread(
        target=follow, args=(listener, conversation.conversation_id, names, me), daemon=True
    ).start()
    for line in sys.stdin:
        text = line.rstrip("\n")
        if text.strip():
            request = SendMessageRequest(
                conversation_id=conversation.conversation_id, client_message_id=str(uuid.uuid4()), text=text
            )
            stub.send_message(request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
