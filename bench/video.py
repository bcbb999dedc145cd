"""Video end to end: decode -> stylize -> encode of the real clip, audio kept, with the CLI's pipeline."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import av
import torch

from bench.paths import data_root
from clipmorph.inference.engine import Engine
from clipmorph.inference.options import StyleMix, StylizeOptions
from clipmorph.inference.pipeline import stylize_video_file
from clipmorph.model.network import WIDTHS, TransformerNet
from clipmorph.styles.library import StyleLibrary


def random_library(width: str) -> StyleLibrary:
    """Untrained weights: the speed of a network does not depend on its values."""
    torch.manual_seed(0)
    net = TransformerNet(WIDTHS[width], 2)
    return StyleLibrary.from_network(net, f"bench-{width}", ["bench-a", "bench-b"], {"random_init": True})


def scaled_copy(source: Path, target: Path, width: int, height: int, repeats: int = 1) -> Path:
    """The same clip at another resolution (H.264 + the original audio), made with PyAV;
    ``repeats`` plays it that many times in a row (a longer clip of the same content)."""
    with av.open(str(target), "w") as out:
        vout = aout = None
        frames = 0
        audio_end = 0  # where the audio written so far ends (dts + duration), in its time base
        for _ in range(repeats):
            with av.open(str(source)) as inp:
                audio_shift = None  # this pass's audio starts where the last one ended
                vin = inp.streams.video[0]
                ain = inp.streams.audio[0] if inp.streams.audio else None
                if vout is None:
                    vout = out.add_stream("libx264", rate=vin.average_rate)
                    vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
                    vout.options = {"preset": "veryfast", "crf": "18"}
                    aout = out.add_stream_from_template(ain) if ain else None
                for packet in inp.demux(*([vin, ain] if ain else [vin])):
                    if packet.stream is vin:  # the final empty packet flushes the decoder's last frames
                        for frame in packet.decode():
                            scaled = frame.reformat(width=width, height=height)
                            scaled.pts, scaled.time_base = frames, Fraction(1) / (vin.average_rate or 25)
                            frames += 1
                            for p in vout.encode(scaled):
                                out.mux(p)
                    elif packet.dts is not None:
                        if audio_shift is None:
                            audio_shift = audio_end - packet.dts if audio_end else 0
                        packet.pts, packet.dts = packet.pts + audio_shift, packet.dts + audio_shift
                        audio_end = packet.dts + (packet.duration or 0)
                        packet.stream = aout
                        out.mux(packet)
        for p in vout.encode(None):
            out.mux(p)
    return target


def warm_up(engine: Engine, path: Path, options: StylizeOptions) -> float:
    """Compile for the clip's frame shape before timing (reported separately)."""
    import time

    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        shape = (stream.codec_context.height, stream.codec_context.width, 3)
    started = time.perf_counter()
    engine.stylize_frames([np.zeros(shape, np.uint8)] * engine.batch_size, options)
    return time.perf_counter() - started


DTYPE_LABELS = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def source_clip() -> Path | None:
    clip = data_root() / "videos" / "ski.mov"
    if not clip.is_file():
        print(f"video  skipped: {clip} not found (set CLIPMORPH_DATA)")
        return None
    return clip


def scaled_clips(clip: Path, folder: Path, sizes: list[tuple[int, int]]) -> dict[str, Path]:
    """The original clip and copies at ``sizes``, labelled as the report shows them."""
    clips = {"852x480 (original)": clip}
    for width, height in sizes:
        clips[f"{width}x{height}"] = scaled_copy(clip, folder / f"ski-{height}.mp4", width, height)
    return clips


def clip_rows(section: str, width: str, clips: dict[str, Path], device: str, folder: Path) -> list[dict]:
    """Each clip through the CLI's pipeline, eager then compiled, on ``device``."""
    library = random_library(width)
    options = StylizeOptions(StyleMix.single("bench-a"), max_side=None)
    rows = []
    for compile_net in (False, True):
        for label, path in clips.items():
            # A fresh engine per clip: each compiled shape is measured on its own.
            engine = Engine(library, device=device, compile=compile_net)
            compile_s = warm_up(engine, path, options) if compile_net else 0.0
            backend = f"{DTYPE_LABELS[engine.dtype]}-{'compiled' if compile_net else 'eager'}"
            target = folder / f"out-{compile_net}-{path.stem}.mp4"
            rows.append(clip_row(section, width, label, backend, engine, path, target, options, compile_s))
    return rows + default_rows(section, width, library, clips, device, folder)


def clip_row(
    section: str, width: str, label: str, backend: str, engine: Engine, path: Path, target: Path,
    options: StylizeOptions, compile_s: float = 0.0,
) -> dict:  # fmt: skip
    """One clip stylized end to end into ``target``: its report row, printed as it is measured."""
    report = stylize_video_file(engine, path, target, options, progress=False)
    with av.open(str(target)) as result:
        audio = bool(result.streams.audio)
    detail = f"{report.frames} frames in {report.seconds:.1f} s, audio kept: {audio}"
    print(f"{section} {width} {label:>18} {backend:<13} {report.fps:7.2f} frames/s ({detail})", flush=True)
    return {"section": section, "width": width, "size": label, "backend": backend, "frames": report.frames,
            "seconds": round(report.seconds, 2), "fps": round(report.fps, 2), "audio_kept": audio,
            "compile_s": round(compile_s, 1), "batch": engine.batch_size, "encoder": report.encoder,
            "threads": torch.get_num_threads()}  # fmt: skip


def default_rows(section: str, width: str, library, clips: dict[str, Path], device: str, folder: Path) -> list[dict]:
    """What a user gets without flags (`--backend auto`), end to end with nothing warmed: first with
    an empty cache folder (the per-shape export paid in the run), then again with the cache filled."""
    import os

    from clipmorph.inference.engine import AUTO, pick_backend, pick_device

    options = StylizeOptions(StyleMix.single("bench-a"), max_side=None)
    backend = pick_backend(AUTO, pick_device(device))
    rows = []
    saved = os.environ.get("CLIPMORPH_CACHE")
    os.environ["CLIPMORPH_CACHE"] = str(folder / "empty-cache")
    try:
        for label, path in clips.items():
            for cache in ("cold cache", "warm cache"):
                engine = Engine(library, device=device, backend=backend)
                name = f"{DTYPE_LABELS[engine.dtype]}-default ({backend}, {cache})"
                target = folder / f"default-{path.stem}.mp4"
                rows.append(clip_row(section, width, label, name, engine, path, target, options))
    finally:
        if saved is None:
            os.environ.pop("CLIPMORPH_CACHE", None)
        else:
            os.environ["CLIPMORPH_CACHE"] = saved
    return rows


def run(quick: bool = False) -> list[dict]:
    clip = source_clip()
    if clip is None:
        return []
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-") as tmp:
        clips = scaled_clips(clip, Path(tmp), [] if quick else [(640, 360), (1280, 720)])
        return clip_rows("video", "lite", clips, "cpu", Path(tmp))
