"""Warping error and optical flow on made-up frames whose motion is known."""

import itertools

import numpy as np

from clipmorph.training import evaluate


def textured(width=96, height=72, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (-(-height // 8), -(-width // 8), 3), dtype=np.uint8)
    big = np.kron(small, np.ones((8, 8, 1), dtype=np.uint8)).astype(np.float32)[:height, :width]
    y, x = np.mgrid[0:height, 0:width]
    return np.clip(big * 0.7 + 60 * np.sin(x / 5.0)[..., None] + 30 * np.cos(y / 7.0)[..., None], 0, 255)


def panning_clip(frames=5, step=2):
    wide = textured(width=96 + frames * step)
    return [wide[:, i * step : i * step + 96].astype(np.uint8) for i in range(frames)]


def test_flow_follows_a_pan_so_warping_removes_the_motion():
    clip = panning_clip()
    flows = evaluate.clip_flows(clip)
    warped = evaluate.warping_error(clip, flows)
    naive = np.mean([np.abs(a.astype(float) - b.astype(float)).mean() / 255 for a, b in itertools.pairwise(clip)])
    assert warped < naive / 4
    maps, mask = flows[0]
    assert mask.mean() > 0.8  # most pixels are visible in both frames
    assert abs(float(np.median(maps[..., 0][mask] - np.arange(96)[None, :].repeat(72, 0)[mask])) - 2) < 0.5


def test_a_still_clip_has_zero_error_and_flicker_raises_it():
    still = [textured()] * 4
    flows = evaluate.clip_flows(still)
    assert evaluate.warping_error([f.astype(np.uint8) for f in still], flows) < 1e-6
    rng = np.random.default_rng(1)
    flicker = [np.clip(f + rng.normal(0, 20, f.shape), 0, 255).astype(np.uint8) for f in still]
    assert evaluate.warping_error(flicker, flows) > 0.03
