"""A time limit on request headers: the receiver's guard against slow-header clients.

uvicorn (0.55, h11) bounds the size of a request head (``h11_max_incomplete_event_size``)
and the idle time between requests (``timeout_keep_alive``), but not the time a client
may take to send its headers: the keep-alive timer is cancelled by the first byte, so a
client that sends one header byte every few seconds (slowloris) holds its connection
for ever, and a few hundred of them hold every file descriptor. uvicorn takes a
protocol class as ``http=``; this one is its h11 protocol plus one timer per wait for a
request head: armed when the connection opens and after every response, cancelled when
the head is complete. When it fires, the connection is answered 408 and closed.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("bizchat.webhook")

HEADER_TIMEOUT = 10.0   # seconds for a whole request head (Meta sends it in one packet)


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with ``seconds`` to receive each request head."""

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:   # the head is in (or the request failed)
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()                             # keep-alive: the next head, in time

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            log.info("closed a connection from %s: no complete request head within %.0f s",
                     f"{self.client[0]}:{self.client[1]}" if self.client else "?", seconds)
            try:
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                                     b"content-length: 0\r\n\r\n")
            finally:
                self.transport.close()

    return HeaderTimeoutProtocol
