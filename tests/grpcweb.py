"""grpc-web binary framing, as a browser's grpc-web client speaks it (for tests through Envoy)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

DATA, TRAILERS = 0x00, 0x80
HEADERS = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "accept": "application/grpc-web+proto"}


def frame(message: bytes, flag: int = DATA) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


@dataclass
class Frame:
    flag: int
    payload: bytes

    @property
    def trailers(self) -> dict[str, str]:
        lines = self.payload.decode().strip().split("\r\n")
        return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Frames of a (possibly still streaming) grpc-web response body, as they arrive."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while len(buffer) >= 5:
            flag, length = struct.unpack(">BI", buffer[:5])
            if len(buffer) < 5 + length:
                break
            yield Frame(flag, buffer[5 : 5 + length])
            buffer = buffer[5 + length :]


def call_headers(token: str) -> dict[str, str]:
    return {**HEADERS, "authorization": f"Bearer {token}"}
