"""The live camera stream, at the protocol level (no browser): a real `bentoml serve` and
WebSocket clients that send frames as the page does. Every frame gets exactly one answer; the
painted one is the model's picture of that frame in the chosen style; the newest frame wins;
bad input ends only its own session, with a reason; the limit and the idle timeout hold."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import numpy as np
import pytest
from PIL import Image

from clipmorph.serving.live import protocol
from clipmorph.serving.live.protocol import FrameLimits, LiveRefusal
from clipmorph.serving.live.sessions import choose

from media_factory import gradient_frame
from service_fixture import SERVICE_LIMITS

LIMITS = FrameLimits(max_bytes=1000, max_pixels=100 * 100)
WAIT = 120  # seconds an answer may take on a busy 2-core machine (an event is awaited, not this)


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and that holds no pixels (a decoder bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def frame_message(number: int, picture: bytes) -> bytes:
    return struct.pack(">I", number) + picture


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255**2 / max(error, 1e-9)))


# -- the wire format, no server -------------------------------------------------------------


def test_a_frame_is_a_number_then_a_picture_and_anything_else_is_refused_with_a_reason():
    picture = jpeg(gradient_frame(64, 48))
    assert protocol.split_frame(frame_message(7, picture), FrameLimits(10**6, 10**6)) == (7, picture)
    with pytest.raises(LiveRefusal) as short:
        protocol.split_frame(b"\x00\x01", LIMITS)
    assert short.value.code == protocol.UNSUPPORTED_DATA
    with pytest.raises(LiveRefusal) as big:
        protocol.split_frame(b"\x00" * 1001, LIMITS)
    assert big.value.code == protocol.TOO_BIG and "1001 bytes" in big.value.reason
    with pytest.raises(LiveRefusal) as garbage:
        protocol.check_header(3, b"not a picture at all", LIMITS)
    assert garbage.value.code == protocol.UNSUPPORTED_DATA and "frame 3" in garbage.value.reason
    with pytest.raises(LiveRefusal) as huge:
        protocol.check_header(4, png_header_only(10_000, 10_000), LIMITS)
    assert huge.value.code == protocol.TOO_BIG and "10000x10000" in huge.value.reason
    protocol.check_header(5, jpeg(gradient_frame(64, 48)), LIMITS)  # 64x48 fits 100x100


def test_a_choice_keeps_what_it_does_not_name_and_refuses_what_it_cannot_take():
    first = choose({"style": "monet", "strength": "0.5"}, None)
    assert (first.style, first.strength) == ("monet", 0.5)
    switched = choose({"style": "scream"}, first)
    assert (switched.style, switched.strength) == ("scream", 0.5)
    with pytest.raises(Exception, match="strength"):
        choose({"strength": 3}, first)
    with pytest.raises(Exception, match="unknown field"):
        choose({"style": "monet", "max_side": 4000}, first)


def test_the_pace_steps_the_painting_size_down_when_slow_and_back_up_when_there_is_room():
    from clipmorph.serving.live.pace import RUNGS, WINDOW, Pace

    pace = Pace(target_fps=25)  # 40 ms a frame
    assert pace.max_side(640) == 640
    changes = [pace.observe(0.160, 640) for _ in range(WINDOW)]  # 4x too slow: about half the side
    assert changes == [False] * (WINDOW - 1) + [True] and pace.max_side(640) in RUNGS and pace.max_side(640) <= 320
    slow_side = pace.max_side(640)
    assert not any(pace.observe(0.035, 640) for _ in range(WINDOW))  # in budget: stays
    assert any(pace.observe(0.005, 640) for _ in range(WINDOW)) and pace.max_side(640) > slow_side  # room: up
    fast = Pace(target_fps=25)
    assert not any(fast.observe(0.004, 640) for _ in range(3 * WINDOW)) and fast.max_side(640) == 640  # never above
    off = Pace(target_fps=0)
    assert not any(off.observe(5.0, 640) for _ in range(3 * WINDOW)) and off.max_side(640) == 640


def test_a_slow_model_paints_smaller_says_so_and_answers_at_the_painting_size():
    """The session's own loop, with an in-process model that takes 30 ms a frame and a target of
    100 frames/s: the painting size steps down, the viewer is told, the model gets frames already
    at that size and the answers come at it (the page scales them to the camera's)."""
    import time as clock

    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.live.sessions import LiveSession, LiveSessions
    from clipmorph.serving.requests import StyleFields

    seen_sides: list[int | None] = []
    seen_shapes: list[tuple] = []
    seen_scaled: list[bool] = []

    def slow_model(frames, options):
        seen_sides.append(options.max_side)
        seen_scaled.append(options.scale_marks)
        seen_shapes.append(frames[0].shape)
        clock.sleep(0.03)
        return [frame[:, ::-1].copy() for frame in frames]

    sessions = LiveSessions(1, idle_seconds=30, limits=FrameLimits(10**7, 10**7), target_fps=100)
    sessions.attach(slow_model, lambda fields: StylizeOptions(StyleMix.single(fields.style)))
    picture = jpeg(gradient_frame(640, 360))
    inbox: asyncio.Queue = asyncio.Queue()
    answers: list[bytes] = []
    notices: list[dict] = []

    async def viewer() -> None:
        async def receive():
            return await inbox.get()

        async def send_bytes(data: bytes) -> None:
            answers.append(data)
            if len(answers) < 12:
                await inbox.put(frame_message(len(answers), picture))

        async def send_text(text: str) -> None:
            notices.append(json.loads(text))

        session = LiveSession(sessions, receive, send_bytes, send_text, StyleFields(style="x"))
        await inbox.put(frame_message(0, picture))
        with contextlib.suppress(LiveRefusal):
            async with asyncio.timeout(60):
                await _until_answers(session, answers, 12)

    asyncio.run(viewer())
    sizes = [n["painting_at"] for n in notices if "painting_at" in n]
    assert sizes[0] == [640, 360] and sizes[-1][0] < 640 and sizes[-1][0] * 360 == sizes[-1][1] * 640
    assert seen_sides[0] == 640 and seen_sides[-1] < 640
    assert seen_scaled and not any(seen_scaled)  # the paced size as it is: a style's mark scale would paint below it
    width, height = sizes[-1]
    assert seen_shapes[0] == (360, 640, 3) and seen_shapes[-1] == (height, width, 3)
    last = np.asarray(Image.open(io.BytesIO(answers[-1][protocol.HEADER.size :])))
    assert last.shape == (height, width, 3)


def test_while_the_first_call_warms_up_the_waiting_frame_comes_back_unpainted_and_the_stream_stays_open():
    """The page keeps two frames in flight and sends no more until one is answered: the one waiting
    behind a long first call (an export) is answered unpainted, and the viewer is not idle meanwhile."""
    import time as clock

    from clipmorph.inference.options import StyleMix, StylizeOptions
    from clipmorph.serving.live.sessions import LiveSession, LiveSessions
    from clipmorph.serving.requests import StyleFields

    calls: list[float] = []

    def warming_model(frames, options):
        calls.append(clock.monotonic())
        clock.sleep(1.5 if len(calls) == 1 else 0.01)
        return [frame.copy() for frame in frames]

    sessions = LiveSessions(1, idle_seconds=0.5, limits=FrameLimits(10**7, 10**7), warm_seconds=0.2)
    sessions.attach(warming_model, lambda fields: StylizeOptions(StyleMix.single(fields.style)))
    picture = jpeg(gradient_frame(64, 48))
    inbox: asyncio.Queue = asyncio.Queue()
    answers: list[tuple[int, int]] = []

    async def viewer() -> None:
        async def send_bytes(data: bytes) -> None:
            answers.append(protocol.HEADER.unpack_from(data))

        async def send_text(text: str) -> None:
            pass

        session = LiveSession(sessions, inbox.get, send_bytes, send_text, StyleFields(style="x"))

        async def camera() -> None:
            await inbox.put(frame_message(0, picture))
            while not calls:  # the first call has started (frames come tens of ms apart)
                await asyncio.sleep(0.01)
            await inbox.put(frame_message(1, picture))

        async with asyncio.timeout(30), asyncio.TaskGroup() as group:
            group.create_task(camera())
            await _until_answers(session, answers, 2)

    asyncio.run(viewer())
    assert answers == [(1, protocol.UNPAINTED), (0, protocol.PAINTED)]  # no idle close during 1.5 s of silence


def test_a_session_that_keeps_changing_the_frame_size_is_refused():
    from clipmorph.serving.live.sessions import MAX_FRAME_SIZES, LiveSession, LiveSessions
    from clipmorph.serving.requests import StyleFields

    sessions = LiveSessions(1, idle_seconds=30, limits=FrameLimits(10**7, 10**7))
    sessions.attach(lambda frames, options: frames, lambda fields: None)
    inbox: asyncio.Queue = asyncio.Queue()
    for number in range(MAX_FRAME_SIZES + 1):
        inbox.put_nowait(frame_message(number, jpeg(gradient_frame(64 + 16 * number, 48))))

    async def nothing(_) -> None:
        pass

    async def viewer() -> None:
        await LiveSession(sessions, inbox.get, nothing, nothing, StyleFields(style="x")).run()

    with pytest.raises(BaseException) as refused:  # an ExceptionGroup around the refusal
        asyncio.run(viewer())
    refusal = refused.value.exceptions[0] if isinstance(refused.value, BaseExceptionGroup) else refused.value
    assert isinstance(refusal, LiveRefusal) and refusal.code == protocol.POLICY and "frame size" in refusal.reason


async def _until_answers(session, answers: list, count: int) -> None:
    async with asyncio.TaskGroup() as group:
        running = group.create_task(session.run())
        while len(answers) < count:
            await asyncio.sleep(0.01)
        running.cancel()


# -- a real server --------------------------------------------------------------------------


class Viewer:
    """One WebSocket client: sends frames, collects every answer by frame number."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, ready: dict) -> None:
        self.ws, self.ready = ws, ready
        self.painted: dict[int, np.ndarray] = {}
        self.unpainted: set[int] = set()
        self.dropped: set[int] = set()
        self.notices: list[dict] = []

    async def send(self, number: int, picture: bytes) -> None:
        await self.ws.send_bytes(frame_message(number, picture))

    async def next_answer(self) -> int | dict:
        """The next frame answer (its number) or notice (a dict); raises on close."""
        message = await asyncio.wait_for(self.ws.receive(), WAIT)
        if message.type == aiohttp.WSMsgType.BINARY:
            number, kind = protocol.HEADER.unpack_from(message.data)
            if kind == protocol.PAINTED:
                self.painted[number] = np.asarray(Image.open(io.BytesIO(message.data[protocol.HEADER.size :])))
            else:
                self.unpainted.add(number)
            return number
        if message.type == aiohttp.WSMsgType.TEXT:
            notice = json.loads(message.data)
            self.notices.append(notice)
            if "dropped" in notice:
                self.dropped.add(notice["dropped"])
            return notice
        raise ConnectionError(f"closed: {message.type} {message.data} {message.extra}")

    async def paint(self, number: int, picture: bytes) -> np.ndarray:
        await self.send(number, picture)
        while number not in self.painted:
            await self.next_answer()
            assert number not in self.unpainted | self.dropped, f"frame {number}, alone in flight, was not painted"
        return self.painted[number]

    async def choose(self, **choice) -> dict:
        await self.ws.send_str(json.dumps(choice))
        while True:
            answer = await self.next_answer()
            if isinstance(answer, dict) and ("chosen" in answer or "error" in answer):
                return answer

    async def closed(self) -> tuple[int, str, list[dict]]:
        """Wait for the server to close: (code, reason, notices on the way)."""
        while True:
            message = await asyncio.wait_for(self.ws.receive(), WAIT)
            if message.type == aiohttp.WSMsgType.TEXT:
                self.notices.append(json.loads(message.data))
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return self.ws.close_code, str(message.extra or ""), self.notices


@asynccontextmanager
async def viewer(server, style: str = "rand-0", headers: dict | None = None, **query) -> AsyncIterator[Viewer]:
    params = {"style": style, **{k: str(v) for k, v in query.items()}}
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{server.url}/live/ws", params=params, headers=headers or {}, max_msg_size=0)
        try:
            first = await asyncio.wait_for(ws.receive(), WAIT)
            ready = json.loads(first.data) if first.type == aiohttp.WSMsgType.TEXT else {}
            yield Viewer(ws, ready)
        finally:
            await ws.close()


def stylized_by_the_image_route(server, picture: bytes, style: str) -> np.ndarray:
    with server.client() as client:
        answer = client.post("/stylize", data={"style": style}, files={"image": ("f.jpg", picture, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.service
def test_a_live_frame_comes_back_painted_as_the_model_paints_it_and_a_style_switch_takes_effect(server):
    picture = jpeg(gradient_frame(320, 180, t=3))
    original = np.asarray(Image.open(io.BytesIO(picture)))
    expected = {style: stylized_by_the_image_route(server, picture, style) for style in ("rand-0", "rand-1")}

    async def stream():
        async with viewer(server, "rand-0") as live:
            assert live.ready == {"ready": True, "style": "rand-0", "strength": 1.0, "preserve_color": False}
            first = await live.paint(0, picture)
            assert await live.choose(style="rand-1") == {
                "chosen": True, "style": "rand-1", "strength": 1.0, "preserve_color": False
            }  # fmt: skip
            second = await live.paint(1, picture)
            return first, second

    first, second = run(stream())
    assert first.shape == original.shape
    # The model's picture of this frame, encoded as the live route encodes it (JPEG), and not the other style's.
    sent = {
        style: np.asarray(Image.open(io.BytesIO(jpeg(rgb, protocol.JPEG_QUALITY)))) for style, rgb in expected.items()
    }
    # Live frames run through their own shape's compiled model, uploads through the any-size one:
    # the same network, about 48 dB apart in bf16 before the JPEGs.
    assert psnr(first, sent["rand-0"]) > 36 and psnr(first, sent["rand-1"]) < 30
    assert psnr(second, sent["rand-1"]) > 36
    assert psnr(first, original) < 25 and psnr(first, second) < 25  # painted, and in another style


@pytest.mark.service
def test_the_newest_frame_wins_and_every_frame_is_answered_once(server):
    pictures = [jpeg(gradient_frame(320, 180, t=t)) for t in range(6)]

    async def stream():
        async with viewer(server) as live:
            for number, picture in enumerate(pictures):  # far faster than one model call
                await live.send(number, picture)
            answered: list[int] = []
            while len(live.painted) + len(live.dropped) + len(live.unpainted) < len(pictures):
                await live.next_answer()
            answered = sorted([*live.painted, *live.dropped, *live.unpainted])
            return live, answered

    live, answered = run(stream())
    assert answered == list(range(len(pictures)))  # each once
    assert 5 in live.painted  # the newest is never dropped
    assert live.dropped or live.unpainted  # older ones waiting behind it were not queued (unpainted: warming up)
    assert all(n["reason"] == "a newer frame arrived" for n in live.notices if "dropped" in n)


@pytest.mark.service
@pytest.mark.parametrize(
    ("message", "code", "words"),
    [
        (frame_message(1, b"\x00not a picture"), protocol.UNSUPPORTED_DATA, "not a JPEG, PNG or WebP"),
        (frame_message(2, png_header_only(10_000, 10_000)), protocol.TOO_BIG, "10000x10000"),
        (frame_message(3, jpeg(gradient_frame(8, 8))), protocol.UNSUPPORTED_DATA, "at least"),
        (b"\x01", protocol.UNSUPPORTED_DATA, "4-byte frame number"),
        ("this is not json", protocol.UNSUPPORTED_DATA, "JSON"),
    ],
    ids=["garbage", "10k-by-10k", "too-small", "short", "text"],
)
@pytest.mark.service
def test_bad_input_ends_only_its_own_session_with_a_reason(server, message, code, words):
    good = jpeg(gradient_frame(160, 96))

    async def stream():
        async with viewer(server) as bystander, viewer(server) as offender:
            await bystander.paint(0, good)
            if isinstance(message, bytes):
                await offender.ws.send_bytes(message)
            else:
                await offender.ws.send_str(message)
            closed = await offender.closed()
            await bystander.paint(1, good)  # the other session streams on
            return closed

    close_code, reason, notices = run(stream())
    assert close_code == code, (reason, notices)
    assert words in reason and any(words in n.get("error", "") for n in notices)
    assert server.alive()


@pytest.mark.service
def test_a_bad_choice_is_answered_and_the_stream_goes_on_and_a_bad_start_is_refused(server):
    picture = jpeg(gradient_frame(160, 96))

    async def stream():
        async with viewer(server) as live:
            answer = await live.choose(style="no-such-style")
            painted = await live.paint(0, picture)
            strength = await live.choose(strength=7)
        async with viewer(server, "no-such-style") as refused:
            closed = await refused.closed()
        return answer, painted, strength, closed

    answer, painted, strength, (code, reason, _) = run(stream())
    assert "no-such-style" in answer["error"] and painted.shape == (96, 160, 3)
    assert "strength" in strength["error"]
    assert code == protocol.POLICY and "no-such-style" in reason


@pytest.mark.service
def test_the_session_limit_refuses_the_next_viewer_clearly_and_a_freed_place_is_taken_again(server):
    limit = int(SERVICE_LIMITS["CLIPMORPH_MAX_LIVE_SESSIONS"])

    async def stream():
        async with contextlib.AsyncExitStack() as stack:
            viewers = [await stack.enter_async_context(viewer(server)) for _ in range(limit)]
            assert all(v.ready.get("ready") for v in viewers)
            async with viewer(server) as one_too_many:
                refused = await one_too_many.closed()
            await viewers[0].ws.close()
            await wait_for_sessions(server, lambda count: count < limit)
            async with viewer(server) as next_one:
                return refused, next_one.ready

    (code, reason, _), ready = run(stream())
    assert code == protocol.TRY_AGAIN_LATER and "already running" in reason
    assert ready.get("ready")


@pytest.mark.service
def test_an_idle_session_is_closed_and_a_cross_site_page_is_refused(server):
    async def stream():
        async with viewer(server) as idle:
            closed = await idle.closed()
        async with viewer(server, headers={"Origin": "https://elsewhere.example"}) as foreign:
            refused = await foreign.closed()
        return closed, refused

    (code, reason, _), (foreign_code, foreign_reason, _) = run(stream())
    assert code == protocol.NORMAL and "no frame for" in reason
    assert foreign_code == protocol.POLICY and "cross-site" in foreign_reason


async def wait_for_sessions(server, wanted: Callable[[float], bool]) -> None:
    """Until /metrics shows a count of live sessions that is ``wanted`` (the server saw the closes)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(1200):
            async with session.get(f"{server.url}/metrics") as answer:
                count = live_sessions(await answer.text())
            if wanted(count or 0.0):
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"live sessions stayed at {count}")


@pytest.fixture(autouse=True)
def no_live_session_left(request):
    """A test that streams starts when the server has closed every earlier test's sessions."""
    if "server" in request.fixturenames:
        run(wait_for_sessions(request.getfixturevalue("server"), lambda count: count == 0))


def live_sessions(metrics_text: str) -> float | None:
    for line in metrics_text.splitlines():
        if line.startswith("clipmorph_live_sessions "):
            return float(line.split()[1])
    return None


@pytest.mark.service
def test_live_frames_are_counted_in_the_metrics(server):
    picture = jpeg(gradient_frame(160, 96))

    def painted() -> float:
        with server.client() as client:
            text = client.get("/metrics").text
        rows = [line for line in text.splitlines() if line.startswith('clipmorph_live_frames_total{outcome="painted"}')]
        return float(rows[0].split()[1]) if rows else 0.0

    before = painted()

    async def stream():
        async with viewer(server) as live:
            for number in range(3):
                await live.paint(number, picture)

    run(stream())
    assert painted() == before + 3
    with server.client() as client:
        assert "clipmorph_live_round_trip_seconds_bucket" in client.get("/metrics").text
