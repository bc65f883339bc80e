"""A direct TCP stream between the Ray pool and each of its actors, for what must be fast.

A Ray actor call into an actor whose engine is decoding waits for the GIL at several hand-overs
between Ray's threads and the actor's event loop: on the shared 2-core machine a round trip took
2.9 ms at the median and 24 ms at p95, against 0.25 ms and 0.45 ms for a socket read by the same
event loop (measured with a thread in the actor holding the GIL, as the hf engine's decode thread
does). Tokens
pushed to the pool and aborts sent to the actor decide how many tokens an FFS loser decodes after
the winner finished, so they go over this stream; everything else (starting requests, readiness,
restarts, deaths) stays on Ray. An actor whose stream cannot be reached (another node behind a
firewall) is served through Ray's streaming generator instead.

The actor listens on its node's address; the pool learns the port and a random key from the
actor's `ready()` (a Ray call) and must send the key first, so only the pool can talk to it.
Frames are a 4-byte length and a pickle.

    pool -> actor   ("abort", ticket, [request ids]) | ("ack", 0, None) after each tokens frame
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

from ponder.types import Chunk

__all__ = ["Listener", "dial", "frame", "read_frame", "merge_chunks", "merged"]

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


def merge_chunks(chunks: list[Chunk]) -> Chunk:
    """Consecutive chunks of one request as one."""
    if len(chunks) == 1:
        return chunks[0]
    last = chunks[-1]
    lps = None if any(c.logprobs is None for c in chunks) else tuple(x for c in chunks for x in c.logprobs)
    tops = None if any(c.top_logprobs is None for c in chunks) else tuple(x for c in chunks for x in c.top_logprobs)
    return Chunk(tuple(t for c in chunks for t in c.token_ids), lps, tops, last.finish_reason, last.stop_reason)


def merged(queue: asyncio.Queue, item: Any) -> tuple[Any, Any]:
    """``item`` and the chunks queued right behind it as one chunk, so a reader that fell behind
    catches up in one step (as vLLM merges the outputs a reader has not taken). Returns the merged
    item and the next queue item if one that is not a chunk had to be taken (else None)."""
    chunks, held = [item], None
    while isinstance(chunks[-1], Chunk) and chunks[-1].finish_reason is None and not queue.empty():
        nxt = queue.get_nowait()
        if not isinstance(nxt, Chunk):  # a death notice or an error: the reader gets it next
            held = nxt
            break
        chunks.append(nxt)
    return (merge_chunks(chunks) if len(chunks) > 1 else item), held
