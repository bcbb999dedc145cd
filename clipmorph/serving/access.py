"""Who may change state (create or delete styles, cancel a style job they do not own).

With ``CLIPMORPH_ADMIN_TOKEN`` set, such requests must carry it (``Authorization: Bearer``).
Without one they are allowed only when the server listens on loopback addresses alone, so
a default ``make serve`` on 127.0.0.1 works out of the box and a public one is never open.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import unicodedata
from collections.abc import Mapping

from clipmorph.errors import BadInput
from clipmorph.styles.names import validate_name

MAX_DISPLAY_NAME = 60


def bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "")
    return value[7:].strip() if value.lower().startswith("bearer ") else ""


def listening_only_on_loopback() -> bool:
    """True when every listening socket of this process is bound to a loopback address."""
    import psutil

    addresses = {c.laddr.ip for c in psutil.Process().net_connections("inet") if c.status == psutil.CONN_LISTEN}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def is_admin(headers: Mapping[str, str], admin_token: str) -> bool:
    """The request carries the configured admin token (constant-time comparison)."""
    return bool(admin_token) and secrets.compare_digest(bearer_token(headers).encode(), admin_token.encode())


def require_admin(headers: Mapping[str, str], admin_token: str) -> None:
    if admin_token:
        if not is_admin(headers, admin_token):
            raise BadInput("this action needs the admin token (Authorization: Bearer ...)", "forbidden")
    elif not listening_only_on_loopback():
        raise BadInput(
            "style changes are disabled on a server reachable from the network: set CLIPMORPH_ADMIN_TOKEN",
            "forbidden",
        )


def style_id_from_name(name: str) -> tuple[str, str]:
    """A user's style name -> (safe id, display name). Accents folded, spaces and punctuation
    dashed; path separators, control characters and over-long names are refused."""
    name = name or ""
    if len(name) > MAX_DISPLAY_NAME:
        raise BadInput(f"style names are at most {MAX_DISPLAY_NAME} characters", "bad_name")
    if any(mark in name for mark in ("/", "\\", "..")) or any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise BadInput("style names cannot contain '/', '\\', '..' or control characters", "bad_name")
    display = name.strip()
    folded = unicodedata.normalize("NFKD", display).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9_]+", "-", folded).strip("-_")[:40].strip("-_")
    if not slug:
        raise BadInput("give the style a name with at least one letter or digit", "bad_name")
    return validate_name(slug), display


def may_cancel(job, headers: Mapping[str, str], admin_token: str) -> None:
    """With an admin token configured, a style job is cancelled by its owner (X-Owner-Key, given
    when it was created) or an admin. Video jobs: knowing the random job id is the capability."""
    from clipmorph import locations

    key_file = job.shared_file("owner_key")  # this replica's, or the jobs bucket's
    if not admin_token or key_file is None:
        return
    if is_admin(headers, admin_token):
        return
    with locations.fetched(key_file) as local:
        owner_key = local.read_text()
    if secrets.compare_digest(headers.get("x-owner-key", "").encode(), owner_key.encode()):
        return
    raise BadInput("only the job's owner (X-Owner-Key) or an admin can cancel it", "forbidden")
