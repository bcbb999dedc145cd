"""One live viewer's stream, and how many may stream at once.

Per viewer, a receiver reads messages and keeps only the newest frame that waits (an older one
is answered "dropped"), and a painter sends the newest frame through the model, one at a time:
however fast the camera, the latency is one model call, never a queue. While a call has run
longer than ``warm_seconds`` on a network size not painted before in this session (the first
frame of a size compiles or exports the network for seconds), waiting and arriving frames are
answered unpainted, so the stream keeps moving; once warm, a slow model only drops frames.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import numpy as np
from pydantic import ValidationError

from clipmorph.errors import BadInput, ClipMorphError, UnknownStyle
from clipmorph.inference.options import MIN_SIDE, StylizeOptions, work_size
from clipmorph.serving import metrics
from clipmorph.serving.live import protocol
from clipmorph.serving.live.pace import Pace
from clipmorph.serving.live.protocol import FrameLimits, LiveRefusal
from clipmorph.serving.requests import StyleFields

Stylize = Callable[[list[np.ndarray], StylizeOptions], list[np.ndarray]]
OptionsFor = Callable[[StyleFields], StylizeOptions]
LOG = logging.getLogger(__name__)
MAX_FRAME_SIZES = 4  # distinct frame sizes one session may send (a camera sends one; each may cost an export)
WARM_CHECK_SECONDS = 0.1
LIVE_FIELDS = ("style", "strength", "preserve_color", "blend_with", "blend")


@dataclass
class LiveStats:
    """What one session did: the page shows its own measures; these feed the metrics and tests."""

    painted: int = 0
    unpainted: int = 0
    dropped: int = 0


def choose(choice: dict, current: StyleFields | None) -> StyleFields:
    """The viewer's style fields after a choice message (unknown fields refused, ranges checked)."""
    unknown = sorted(set(choice) - set(LIVE_FIELDS))
    if unknown:
        raise BadInput(f"unknown field(s) {', '.join(unknown)}; a live choice takes {', '.join(LIVE_FIELDS)}")
    merged = (current.model_dump() if current else {}) | choice
    try:
        return StyleFields.model_validate(merged)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "choice"
        raise BadInput(f"{where}: {first['msg']}") from None


class LiveSessions:
    """The live viewers of this API worker: at most ``max_sessions`` at once, the next refused."""

    def __init__(
        self,
        max_sessions: int,
        idle_seconds: float,
        limits: FrameLimits,
        target_fps: float = 0.0,
        warm_seconds: float = 1.0,
    ) -> None:
        self.max_sessions = max_sessions
        self.target_fps = target_fps  # 0: always paint at the frame's own size
        self.idle_seconds = idle_seconds
        self.limits = limits
        self.warm_seconds = warm_seconds
        self.stylize: Stylize | None = None  # attached when the service instance starts
        self.options_for: OptionsFor | None = None
        self._active = 0
        self._lock = threading.Lock()

    def attach(self, stylize: Stylize, options_for: OptionsFor) -> None:
        self.stylize, self.options_for = stylize, options_for

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def admitted(self) -> Iterator[None]:
        with self._lock:
            if self.stylize is None or self.options_for is None:
                raise LiveRefusal(protocol.TRY_AGAIN_LATER, "the service is starting: try again in a moment")
            if self._active >= self.max_sessions:
                raise LiveRefusal(
                    protocol.TRY_AGAIN_LATER,
                    f"{self._active} live sessions already running, the most this server takes",
                )
            self._active += 1
        metrics.get().live_sessions.inc(1)
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
            metrics.get().live_sessions.dec(1)


@dataclass
class Pending:
    number: int
    picture: bytes
    size: tuple[int, int]
    arrived: float


@dataclass
class LiveSession:
    """One viewer: ``receive`` yields text (str) or frames (bytes); raises LiveRefusal to end it."""

    sessions: LiveSessions
    receive: Callable[[], Awaitable[str | bytes]]
    send_bytes: Callable[[bytes], Awaitable[None]]
    send_text: Callable[[str], Awaitable[None]]
    fields: StyleFields
    stats: LiveStats = field(default_factory=LiveStats)
    options: StylizeOptions | None = None
    _pending: Pending | None = None
    _busy_since: float | None = None
    _warm_sizes: set[tuple[int, int]] = field(default_factory=set)  # network sizes painted at least once
    _cold = False  # the model call under way is the first at its network size
    _last_activity: float = field(default_factory=time.monotonic)  # a message in or an answer out
    _frame_sizes: set[tuple[int, int]] = field(default_factory=set)
    _wake: anyio.Event = field(default_factory=anyio.Event)
    _pace: Pace | None = None
    _announced: tuple[int, int] | None = None  # the painting size the viewer was last told

    async def run(self) -> None:
        self.options = self._options_for(self.fields)
        self._pace = Pace(self.sessions.target_fps)
        await self.send_text(protocol.notice(ready=True, **self._described()))
        async with anyio.create_task_group() as group:
            group.start_soon(self._paint_newest)
            group.start_soon(self._answer_while_warming)
            await self._receive_until_refused()
            group.cancel_scope.cancel()

    def _options_for(self, fields: StyleFields) -> StylizeOptions:
        try:
            return self.sessions.options_for(fields)
        except ClipMorphError as error:
            raise LiveRefusal(protocol.POLICY, str(error)) from None

    def _described(self) -> dict:
        return {
            "style": self.fields.mix,
            "strength": self.fields.strength,
            "preserve_color": self.fields.preserve_color,
        }

    async def _receive_until_refused(self) -> None:
        """Idle: nothing received for ``idle_seconds`` since the last message or answer (a viewer
        whose frames the model still holds waits for us, it is not idle)."""
        while True:
            quiet = time.monotonic() - self._last_activity
            with anyio.move_on_after(max(0.0, self.sessions.idle_seconds - quiet)) as idle:
                message = await self.receive()
            if idle.cancelled_caught:
                if self._busy_since is not None or self._pending is not None:
                    self._last_activity = time.monotonic()
                    continue
                if time.monotonic() - self._last_activity >= self.sessions.idle_seconds:
                    raise LiveRefusal(protocol.NORMAL, f"no frame for {self.sessions.idle_seconds:g} s: session closed")
                continue
            self._last_activity = time.monotonic()
            if isinstance(message, str):
                await self._choose(protocol.parse_choice(message))
            else:
                await self._take_frame(message)

    async def _choose(self, choice: dict) -> None:
        """A style switch: a bad one is answered and the stream goes on with the current style."""
        try:
            fields = choose(choice, self.fields)
            options = self.sessions.options_for(fields)
        except ClipMorphError as error:
            await self.send_text(protocol.notice(error=str(error)))
            return
        self.fields, self.options = fields, options
        await self.send_text(protocol.notice(chosen=True, **self._described()))

    async def _take_frame(self, message: bytes) -> None:
        number, picture = protocol.split_frame(message, self.sessions.limits)
        size = protocol.check_header(number, picture, self.sessions.limits)  # garbage is refused before it waits
        self._frame_sizes.add(size)
        if len(self._frame_sizes) > MAX_FRAME_SIZES:  # each size may cost an export: a camera keeps one
            raise LiveRefusal(protocol.POLICY, f"the frame size changed more than {MAX_FRAME_SIZES - 1} times")
        if self._warming():
            await self._unpainted(number, picture)
            return
        if self._pending is not None:
            await self._drop(self._pending.number)
        self._pending = Pending(number, picture, size, time.monotonic())
        self._wake.set()

    def _warming(self) -> bool:
        busy = self._busy_since
        return self._cold and busy is not None and time.monotonic() - busy > self.sessions.warm_seconds

    async def _unpainted(self, number: int, picture: bytes) -> None:
        self.stats.unpainted += 1
        metrics.get().live_frames.labels("unpainted").inc()
        await self.send_bytes(protocol.unpainted_answer(number, picture))

    async def _answer_while_warming(self) -> None:
        """The frame waiting behind a long first call is answered unpainted too: a viewer with
        its frames in flight sends no more until they are answered."""
        while True:
            await anyio.sleep(WARM_CHECK_SECONDS)
            if self._pending is not None and self._warming():
                frame, self._pending = self._pending, None
                await self._unpainted(frame.number, frame.picture)

    async def _drop(self, number: int, reason: str = "a newer frame arrived") -> None:
        self.stats.dropped += 1
        metrics.get().live_frames.labels("dropped").inc()
        await self.send_text(protocol.notice(dropped=number, reason=reason))

    async def _paint_newest(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            frame, self._pending = self._pending, None
            if frame is None:
                continue
            options = self._paced(frame)
            painted_at = self._painted_at(frame, options)
            self._cold = painted_at not in self._warm_sizes
            self._busy_since = started = time.monotonic()
            try:
                answer = await anyio.to_thread.run_sync(self._paint, frame, options, painted_at)
            except UnknownStyle as error:  # deleted while it streams (in-process stylizers raise this)
                raise LiveRefusal(protocol.POLICY, str(error)) from None
            except (LiveRefusal, anyio.get_cancelled_exc_class()):
                raise
            except Exception as error:  # the model is overloaded or restarting: this frame is lost, not the stream
                LOG.warning("live frame %d not painted: %s", frame.number, error)
                await self._drop(frame.number, "the model did not answer")
                continue
            finally:
                self._busy_since, self._cold = None, False
            self._warm_sizes.add(painted_at)
            self._pace.observe(time.monotonic() - started, self._top(frame))
            await self._announce(frame, painted_at)
            await self.send_bytes(answer)
            self._last_activity = time.monotonic()
            self.stats.painted += 1
            metrics.get().live_frames.labels("painted").inc()
            metrics.get().live_round_trip.observe(time.monotonic() - frame.arrived)

    def _paced(self, frame: Pending) -> StylizeOptions:
        """This frame's options with the network's size the pace chose, exactly: a style's mark
        scale does not shrink it further, so the size announced and the pace's ladder hold."""
        side = max(MIN_SIDE, self._pace.max_side(self._top(frame)))  # a too-small frame is refused by the model
        return dataclasses.replace(self.options, max_side=side, keep_size=True, scale_marks=False)

    def _top(self, frame: Pending) -> int:
        """The largest long side the network may run at for this frame: its own, or the service's cap."""
        limit = self.options.max_side
        return max(frame.size) if limit is None else min(max(frame.size), limit)

    @staticmethod
    def _painted_at(frame: Pending, options: StylizeOptions) -> tuple[int, int]:
        """(width, height) the network runs at for this frame."""
        width, height = frame.size
        return work_size(height, width, options.max_side)[::-1]

    async def _announce(self, frame: Pending, painted_at: tuple[int, int]) -> None:
        if painted_at != self._announced:
            self._announced = painted_at
            await self.send_text(protocol.notice(painting_at=list(painted_at), frame=list(frame.size)))

    def _paint(self, frame: Pending, options: StylizeOptions, painted_at: tuple[int, int]) -> bytes:
        """Decoded at the painting size and answered at it: the page scales the painting to the
        camera's size as it draws (cheaper there than resizing here twice and sending the pixels)."""
        rgb = protocol.decode_frame(frame.number, frame.picture, self.sessions.limits, painted_at)
        try:
            [painted] = self.sessions.stylize([rgb], options)
        except BadInput as error:  # this frame's own fault (too small, say), or the style was deleted: why
            code = protocol.POLICY if error.reason == "unknown_style" else protocol.UNSUPPORTED_DATA
            raise LiveRefusal(code, f"frame {frame.number}: {error}") from None
        return protocol.encode_answer(frame.number, painted)
