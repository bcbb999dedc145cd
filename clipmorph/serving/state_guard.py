"""ASGI middleware: the routes that change state refuse requests a browser or a proxy forged.

"The server listens on loopback" keeps the network out, but not three ways in from this
machine: a page on another site that POSTs a form to 127.0.0.1 (the browser sends its
``Origin``), a DNS-rebound name that resolves to 127.0.0.1 (the browser sends that name as
``Host``), and a local reverse proxy or tunnel (it adds ``X-Forwarded-*`` or keeps the public
``Host``). So a state-changing request must be same-origin (or from an allowed origin) and,
when no admin token is configured, must name a loopback host and not come through a proxy.
With a token, the token is the gate and proxies are fine.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from clipmorph.serving.limits import ASGIApp, Receive, Scope, Send

STATE_CHANGING = re.compile(r"^/(create_style|delete_style|jobs/[^/]+/cancel)/?$")
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
PROXY_HEADERS = (b"x-forwarded-for", b"x-forwarded-host", b"forwarded", b"x-real-ip")


def host_name(host: str) -> str:
    """``Host`` header -> name without port (``[::1]:3000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_host(host: str) -> bool:
    name = host_name(host)
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cross_site_refusal(headers: dict[bytes, bytes], allowed_origins: set[str]) -> str | None:
    """Why a browser request from another site's page is refused (its ``Origin`` is not this
    server's, nor an allowed one), or None. Browsers send ``Origin`` on every WebSocket too."""
    host = headers.get(b"host", b"").decode("latin-1")
    origin = headers.get(b"origin", b"").decode("latin-1")
    if origin == "null":  # sandboxed frames, file: pages, some redirects: never same-origin
        return "cross-site request refused (Origin null)"
    if origin and origin.rstrip("/") not in allowed_origins and urlsplit(origin).netloc.lower() != host.strip().lower():
        return f"cross-site request refused (Origin {origin} is not this server)"
    return None


def refusal(headers: dict[bytes, bytes], token_configured: bool, allowed_origins: set[str]) -> str | None:
    """Why a state-changing request is refused, or None when it may go on."""
    cross_site = cross_site_refusal(headers, allowed_origins)
    if cross_site:
        return cross_site
    host = headers.get(b"host", b"").decode("latin-1")
    if token_configured:
        return None
    if not is_loopback_host(host):
        shown = host or "(none)"
        return f"Host {shown} is not a loopback name: set CLIPMORPH_ADMIN_TOKEN to change styles from elsewhere"
    if any(name in headers for name in PROXY_HEADERS):
        return "request came through a proxy: set CLIPMORPH_ADMIN_TOKEN to change styles through one"
    return None


class StateChangeGuard:
    def __init__(self, app: ASGIApp, token_configured: bool, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.token_configured = token_configured
        self.allowed_origins = {o.rstrip("/") for o in allowed_origins if o}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and STATE_CHANGING.match(scope.get("path", "")):
            reason = refusal(dict(scope.get("headers") or []), self.token_configured, self.allowed_origins)
            if reason:
                from clipmorph.serving import metrics

                metrics.rejected("forged_origin")
                body = json.dumps({"error": reason}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 403, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
