"""Close connections whose request head does not arrive in time (slowloris).

uvicorn times a connection only while it idles between requests (keep-alive). From a new
connection, or the first byte of a further request, to the last header line there is no limit:
a client that trickles header bytes, or connects and sends nothing, holds a socket and a file
descriptor as long as it likes, and enough of them leave no descriptor for anyone else.
``install`` arms a timer on every new connection and at the first byte of each further request,
cancelled once the head is complete (or the connection is upgraded to a WebSocket, which has its
own idle limit); the body has its own limits (``limits.BodyLimits``).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_TIMER = "_clipmorph_head_timer"


def install(timeout_seconds: float) -> bool:
    """Patch uvicorn's h11 protocol once per process; False when it is not the one we know."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    if getattr(H11Protocol, "_clipmorph_head_deadline", None) is not None:
        H11Protocol._clipmorph_head_deadline = timeout_seconds
        return True
    needed = ("connection_made", "data_received", "connection_lost")
    if not all(hasattr(H11Protocol, name) for name in needed):
        log.warning("uvicorn's H11Protocol changed: request heads are not timed")
        return False
    made, received, lost = H11Protocol.connection_made, H11Protocol.data_received, H11Protocol.connection_lost

    def waiting_for_head(self) -> bool:
        if self.transport.get_protocol() is not self:  # upgraded to a WebSocket: no longer ours to time
            return False
        return self.cycle is None or self.cycle.response_complete

    def disarm(self) -> None:
        timer = getattr(self, _TIMER, None)
        if timer is not None:
            timer.cancel()
            setattr(self, _TIMER, None)

    def expire(self) -> None:
        setattr(self, _TIMER, None)
        if waiting_for_head(self) and not self.transport.is_closing():
            log.info("closed a connection whose request head took over %s s", H11Protocol._clipmorph_head_deadline)
            self.transport.close()

    def arm(self) -> None:
        disarm(self)
        setattr(self, _TIMER, self.loop.call_later(H11Protocol._clipmorph_head_deadline, expire, self))

    def connection_made(self, transport) -> None:
        made(self, transport)
        arm(self)

    def data_received(self, data: bytes) -> None:
        if waiting_for_head(self) and getattr(self, _TIMER, None) is None:
            arm(self)  # the first byte of a further request on a kept-alive connection
        received(self, data)
        if not waiting_for_head(self):
            disarm(self)

    def connection_lost(self, exc) -> None:
        disarm(self)
        lost(self, exc)

    H11Protocol.connection_made = connection_made
    H11Protocol.data_received = data_received
    H11Protocol.connection_lost = connection_lost
    H11Protocol._clipmorph_head_deadline = timeout_seconds
    return True
