"""Serve the models of a bucket (``CLIPMORPH_MODELS_URL``): pull what the store lacks before the
service loads, then look again on a timer so that styles pushed later are served without a
restart (the model runtime reloads when the store changes, as for user-made styles)."""

from __future__ import annotations

import logging
import threading
import time

from clipmorph.errors import ClipMorphError

log = logging.getLogger(__name__)


def pull_new(url: str) -> int:
    """Import what ``url`` holds and the store lacks; the count, or -1 when it could not be read
    (the service goes on with what its store holds: a bucket outage must not stop it)."""
    from clipmorph.styles import bucket

    try:
        copied = [t.tag for t in bucket.pull(url) if t.copied]
    except ClipMorphError as error:
        log.warning("could not pull models from %s: %s", url, error)
        return -1
    for tag in copied:
        log.info("pulled %s from %s", tag, url)
    return len(copied)


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
