"""The live route the API service mounts at ``/live``: ``/live/ws?style=...&strength=...``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from clipmorph.errors import ClipMorphError
from clipmorph.serving.live import protocol
from clipmorph.serving.live.protocol import LiveRefusal
from clipmorph.serving.live.sessions import LiveSession, LiveSessions, choose
from clipmorph.serving.state_guard import cross_site_refusal

REFUSAL_REASONS = {  # close code -> clipmorph_rejected_inputs_total{reason}
    protocol.TRY_AGAIN_LATER: "live_full",
    protocol.TOO_BIG: "too_large",
    protocol.UNSUPPORTED_DATA: "live_bad_frame",
    protocol.POLICY: "live_refused",
}


def create_live_app(sessions: LiveSessions, allowed_origins: list[str]) -> Starlette:
    allowed = {origin.rstrip("/") for origin in allowed_origins}

    async def stream(websocket: WebSocket) -> None:
        # Accepted first, refused after: a browser shows a close frame's reason, never a refused handshake's.
        await websocket.accept()

        async def receive() -> str | bytes:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", protocol.NORMAL))
            return message["bytes"] if message.get("bytes") is not None else message.get("text") or ""

        try:
            cross_site = cross_site_refusal(dict(websocket.scope.get("headers") or []), allowed)
            if cross_site:
                raise LiveRefusal(protocol.POLICY, cross_site)
            try:
                fields = choose(dict(websocket.query_params), None)
            except ClipMorphError as error:
                raise LiveRefusal(protocol.POLICY, str(error)) from None
            with sessions.admitted():
                await LiveSession(sessions, receive, websocket.send_bytes, websocket.send_text, fields).run()
        except* WebSocketDisconnect:
            pass  # the viewer left
        except* LiveRefusal as refused:
            await _close(websocket, refused.exceptions[0])

    return Starlette(routes=[WebSocketRoute("/ws", stream)])


async def _close(websocket: WebSocket, refusal: LiveRefusal) -> None:
    from clipmorph.serving import metrics

    if refusal.code != protocol.NORMAL:
        metrics.rejected(REFUSAL_REASONS.get(refusal.code, "live_refused"))
    try:
        await websocket.send_text(protocol.notice(error=refusal.reason, code=refusal.code))
        await websocket.close(refusal.code, refusal.reason)
    except (WebSocketDisconnect, RuntimeError, OSError):  # the viewer left first
        pass
