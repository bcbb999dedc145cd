"""Serve the models of a bucket (``CLIPMORPH_MODELS_URL``): pull what the store lacks before the
service loads, then look again on a timer so that styles pushed later are served without a
restart (the model runtime reloads when the store changes, as for user-made styles)."""

from __future__ import annotations

import logging
import threading
import time

from clipmorph.errors import BadInput, ClipMorphError

log = logging.getLogger(__name__)


def pull_new(url: str) -> int:
    """Import what ``url`` holds and the store lacks, delete what it withdrew; the count, or -1
    when it could not be read (the service goes on with what its store holds: a bucket outage
    must not stop it)."""
    from clipmorph.styles import bucket

    try:
        moved = bucket.pull(url)
    except ClipMorphError as error:
        log.warning("could not pull models from %s: %s", url, error)
        return -1
    for transfer in moved:
        if transfer.copied or transfer.withdrawn:
            log.info("%s %s (%s)", "removed" if transfer.withdrawn else "pulled", transfer.tag, url)
    return sum(t.copied or t.withdrawn for t in moved)


def delete_style(style_id: str, url: str) -> list[str]:
    """``POST /delete_style``: a user-made style out of the bucket first (``url``, when the
    service serves one; else every replica's poller would bring it back), then out of the store."""
    from clipmorph.styles import bucket, index

    tags = index.style_versions(style_id, user_made_only=True)
    if url:
        try:
            bucket.withdraw(url, tags)
        except ClipMorphError as error:
            raise BadInput(
                f"the models bucket could not be changed, nothing was deleted: {error}", "unavailable"
            ) from error
    return index.delete_style(style_id, user_made_only=True)


def start_poller(url: str, every_seconds: float) -> threading.Thread | None:
    """Pull from ``url`` every ``every_seconds`` in a daemon thread (none for 0 or no URL)."""
    if not url or every_seconds <= 0:
        return None

    def loop() -> None:
        while True:
            time.sleep(every_seconds)
            pull_new(url)

    thread = threading.Thread(target=loop, name="models-poller", daemon=True)
    thread.start()
    return thread
