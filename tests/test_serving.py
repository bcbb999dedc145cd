"""Unit tests of the service's exchange types (no server needed)."""

import numpy as np
import pytest
from aiohttp import ServerDisconnectedError

from clipmorph.errors import BadInput
from clipmorph.inference.options import PAINT_SIDE, StyleMix, StylizeOptions
from clipmorph.serving.remote import RemoteStylizer
from clipmorph.serving.requests import parse_options
from clipmorph.serving.schema import FrameItem

from media_factory import gradient_frame


def test_frame_item_round_trip():
    frame = gradient_frame(33, 17)
    options = StylizeOptions(StyleMix.parse("a=3,b=1"), 0.4, True, 512, False)
    item = FrameItem.of(frame, options)
    assert np.array_equal(item.frame(), frame)
    assert item.options() == options
    live = StylizeOptions(StyleMix.parse("a"), max_side=320, scale_marks=False)  # a paced live frame
    assert FrameItem.of(frame, live).options() == live
    broken = item.model_copy(update={"width": 34})
    with pytest.raises(BadInput, match="expected"):
        broken.frame()


def test_remote_stylizer_retries_a_dropped_connection_then_gives_up():
    calls = []

    def flaky(items):
        calls.append(len(items))
        if len(calls) == 1:
            raise ServerDisconnectedError()
        return [item.frame() for item in items]

    stylizer = RemoteStylizer(flaky, batch_size=4)
    frames = [gradient_frame(20, 20), gradient_frame(24, 20)]
    out = stylizer.stylize_frames(frames, StylizeOptions(StyleMix.single("a")))
    assert calls == [2, 2] and all(np.array_equal(a, b) for a, b in zip(out, frames, strict=True))

    def always_down(items):
        raise ServerDisconnectedError()

    with pytest.raises(ServerDisconnectedError):
        RemoteStylizer(always_down, batch_size=4).stylize_frames(frames, StylizeOptions(StyleMix.single("a")))


def test_an_answer_cut_off_mid_read_is_retried_and_other_errors_are_not():
    frames = [gradient_frame(20, 20)]
    calls = []

    def cut_off_once(items):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Connection closed.")  # aiohttp, when the model server closed mid-answer
        return [item.frame() for item in items]

    out = RemoteStylizer(cut_off_once, batch_size=4).stylize_frames(frames, StylizeOptions(StyleMix.single("a")))
    assert len(calls) == 2 and np.array_equal(out[0], frames[0])

    def broken(items):
        calls.append(1)
        raise RuntimeError("the model crashed")

    calls.clear()
    with pytest.raises(RuntimeError, match="crashed"):
        RemoteStylizer(broken, batch_size=4).stylize_frames(frames, StylizeOptions(StyleMix.single("a")))
    assert len(calls) == 1  # not a transport failure: not retried


def test_parse_options_paints_at_the_paint_side_unless_asked_within_the_cap():
    assert parse_options("a", 1.0, False, None, 1920).max_side == PAINT_SIDE == 768
    assert parse_options("a", 1.0, False, None, 1920, paint_side=512).max_side == 512
    assert parse_options("a", 1.0, False, 1600, 1920).max_side == 1600  # finer marks, asked for
    assert parse_options("a", 1.0, False, None, 600).max_side == 600  # a lowered cap lowers the default too
    with pytest.raises(BadInput, match="limit of 1024"):
        parse_options("a", 1.0, False, 2048, 1024)
