"""A direct TCP stream between the Ray pool and each of its actors, for what must be fast.

A Ray actor call into an actor whose engine is decoding waits for the GIL at several hand-overs
between Ray's threads and the actor's event loop: on a busy 2-core machine a round trip took
4.5 ms at the median and 15 ms at p95, against 0.25 ms and 2.5 ms for a socket read by the same
event loop (measured with a thread holding the GIL, as the hf engine's decode thread does). Tokens
pushed to the pool and aborts sent to the actor decide how many tokens an FFS loser decodes after
the winner finished, so they go over this stream; everything else (starting requests, readiness,
restarts, deaths) stays on Ray. An actor whose stream cannot be reached (another node behind a
firewall) is served through Ray's streaming generator instead.

The actor listens on its node's address; the pool learns the port and a random key from the
actor's `ready()` (a Ray call) and must send the key first, so only the pool can talk to it.
Frames are a 4-byte length and a pickle.

    pool -> actor   ("abort", ticket, [request ids])
    actor -> pool   ("tokens", {request: (chunk, error, tokens decoded)}) | ("aborted", ticket, {request: (final, after)})
"""

from __future__ import annotations

import asyncio
import hmac
import pickle
import secrets
import socket
import struct
from typing import Any, Awaitable, Callable

__all__ = ["Listener", "dial", "frame", "read_frame"]

_LENGTH = struct.Struct("!I")
KEY_BYTES = 16


def frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return pickle.loads(await reader.readexactly(length))


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Listener:
    """The actor's end: accepts a connection that starts with the key and hands it on."""

    def __init__(self, serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.key = secrets.token_bytes(KEY_BYTES)
        self.serve = serve
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str) -> tuple[str, int, bytes]:
        """Listen (once) on ``host``; returns (host, port, key) for the pool."""
        if self.server is None:
            self.server = await asyncio.start_server(self._accept, host, 0)
        return host, self.server.sockets[0].getsockname()[1], self.key

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            key = await asyncio.wait_for(reader.readexactly(KEY_BYTES), 10)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if not hmac.compare_digest(key, self.key):
            writer.close()
            return
        _no_delay(writer)
        await self.serve(reader, writer)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def dial(host: str, port: int, key: bytes, timeout_s: float = 3.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The pool's end: connect and prove the key (OSError or TimeoutError when unreachable)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    _no_delay(writer)
    writer.write(key)
    return reader, writer
