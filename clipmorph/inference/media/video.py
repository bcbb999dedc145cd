"""Streamed video through PyAV (FFmpeg's libraries in-process): frames one by one, no temp
folder of JPEGs; audio packets copied into the output when its container can hold them."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from clipmorph.errors import BadInput
from clipmorph.inference.media.kinds import (
    AUDIO_COPYABLE,
    CODEC_ALIASES,
    ENCODER_CHOICES,
    H264_ENCODERS,
    VIDEO_CONTAINERS,
)


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int  # 0 when the container does not say
    has_audio: bool

    @property
    def seconds(self) -> float:
        return self.frames / float(self.fps) if self.fps else 0.0


@dataclass(frozen=True)
class DecodeLimits:
    """What a clip may be, checked on every decoded frame: a container's header may say 1 frame,
    or nothing about its length (an AVI without index, a browser's Matroska), and the frame size
    may change mid-clip. None: no limit."""

    max_seconds: float | None = None  # by the frames' timestamps (and their count at max_fps)
    max_pixels: int | None = None  # per frame
    max_fps: float | None = None  # the header's frame rate; also caps frames at max_seconds x max_fps

    @property
    def max_frames(self) -> int | None:
        if self.max_seconds is None or self.max_fps is None:
            return None
        return int(self.max_seconds * self.max_fps) + 1

    def check_header(self, info: VideoInfo) -> None:
        if self.max_pixels is not None and info.width * info.height > self.max_pixels:
            limit = self.max_pixels / 1e6
            raise BadInput(f"video is {info.width}x{info.height}; the limit is {limit:.1f} MP", "too_large")
        if self.max_fps is not None and float(info.fps) > self.max_fps:
            raise BadInput(f"video is {float(info.fps):.0f} frames/s; the limit is {self.max_fps:g}", "bad_value")
        if self.max_seconds is not None and info.seconds > self.max_seconds:
            limit = self.max_seconds
            raise BadInput(f"video is {info.seconds:.1f} s long; the limit here is {limit:.0f} s", "too_long")

    def check_frame(self, index: int, frame: av.VideoFrame) -> None:
        if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
            raise BadInput(
                f"frame {index + 1} is {frame.width}x{frame.height}; the limit is {self.max_pixels / 1e6:.1f} MP",
                "too_large",
            )
        if self.max_seconds is None:
            return
        too_long = f"the video is longer than the limit here of {self.max_seconds:.0f} s"
        if frame.time is not None and frame.time > self.max_seconds + 0.5:
            raise BadInput(f"{too_long} (a frame at {frame.time:.1f} s)", "too_long")
        if self.max_frames is not None and index + 1 > self.max_frames:
            raise BadInput(f"{too_long} (more than {self.max_frames} frames)", "too_long")


class VideoReader:
    """Decode a video's frames as RGB arrays with their timestamps, one at a time. Every frame
    comes out upright (a phone's display rotation applied, so the output needs none) and at the
    stream's size (a clip whose size changes mid-way is scaled to it)."""

    def __init__(self, path: Path, limits: DecodeLimits | None = None) -> None:
        self.limits = limits or DecodeLimits()
        try:
            self.container = av.open(str(path))
        except av.FFmpegError as error:
            raise BadInput(f"{path}: cannot open video: {error}", "corrupt") from error
        if not self.container.streams.video:
            self.container.close()
            raise BadInput(f"{path}: no video stream", "no_video")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        frames = self.stream.frames
        if not frames and self.stream.duration and self.stream.time_base:
            frames = round(float(self.stream.duration * self.stream.time_base * rate))
        self._decoded = self._decode()
        self._first = next(self._decoded, None)  # its display rotation says how the clip stands
        self.quarter_turns = round((self._first.rotation if self._first is not None else 0) / 90) % 4
        width, height = self.stream.codec_context.width, self.stream.codec_context.height
        self.stored_size = (width, height)
        self.info = VideoInfo(
            width=height if self.quarter_turns % 2 else width,
            height=width if self.quarter_turns % 2 else height,
            fps=Fraction(rate),
            time_base=Fraction(self.stream.time_base or Fraction(1, 90000)),
            frames=int(frames or 0),
            has_audio=bool(decodable_audio(self.container)),
        )

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self.container.decode(self.stream)
        except av.FFmpegError as error:
            raise BadInput(f"video decoding failed: {error}", "corrupt") from error

    def __iter__(self) -> Iterator[tuple[np.ndarray, int | None]]:
        frames = self._decoded if self._first is None else itertools.chain([self._first], self._decoded)
        self._first = None
        width, height = self.stored_size  # what the writer is set up for (before the rotation)
        for index, frame in enumerate(frames):
            self.limits.check_frame(index, frame)
            if (frame.width, frame.height) == (width, height):
                rgb = frame.to_ndarray(format="rgb24")
            else:
                rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
            if self.quarter_turns:  # counter-clockwise, as FFmpeg's display matrix means it
                rgb = np.ascontiguousarray(np.rot90(rgb, self.quarter_turns))
            yield rgb, frame.pts

    def close(self) -> None:
        self.container.close()


@dataclass(frozen=True)
class VideoEncoding:
    """How stylized video is encoded: quality (x264's CRF scale, also NVENC's constant-quality
    level) and the H.264 encoder ("auto": NVENC where it opens, else x264; WebM is always VP9)."""

    crf: int = 18
    encoder: str = "auto"


DEFAULT_ENCODING = VideoEncoding()


def h264_options(encoder: str, crf: int) -> dict[str, str]:
    if encoder == "h264_nvenc":
        return {"preset": "p4", "rc": "vbr", "cq": str(crf), "b": "0"}  # constant quality, no bitrate cap
    # veryfast: faster end to end than medium on a small CPU, and smaller files at CRF 18 (docs/performance.md)
    return {"crf": str(crf), "preset": "veryfast"}


@functools.cache
def encoder_opens(encoder: str) -> bool:
    """Whether ``encoder`` can start here, tried once per process on a small frame size."""
    try:
        context = av.CodecContext.create(encoder, "w")
        context.width, context.height, context.pix_fmt = 256, 256, "yuv420p"
        context.time_base = Fraction(1, 25)
        context.options = h264_options(encoder, VideoEncoding.crf)
        context.open()
    except (av.FFmpegError, OSError, ValueError):
        return False
    return True


def pick_h264_encoder(choice: str) -> str:
    """The encoder for ``choice``; naming one that cannot start here is an error, not a fallback."""
    if choice == "auto":
        return "h264_nvenc" if encoder_opens("h264_nvenc") else "libx264"
    if choice not in H264_ENCODERS:
        raise BadInput(f"unknown video encoder {choice!r}: choose from {', '.join(ENCODER_CHOICES)}")
    if not encoder_opens(choice):
        raise BadInput(
            f"the {choice} encoder cannot start on this machine (NVENC needs an NVIDIA GPU with a video "
            "encoder engine and its driver): use auto or libx264"
        )
    return choice


class VideoWriter:
    """Encode RGB frames to H.264 (VP9 for .webm) and carry over the source's audio track.

    Audio packets are read from the source by a second demuxer and interleaved with the
    video as it is written, so the output streams well and needs no second pass.
    """

    def __init__(
        self, path: Path, suffix: str, info: VideoInfo, audio_source: Path | None, encoding: VideoEncoding
    ) -> None:
        self.format = VIDEO_CONTAINERS[suffix.lower()]
        self.encoder = "libvpx-vp9" if self.format == "webm" else pick_h264_encoder(encoding.encoder)
        options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
        self.container = av.open(str(path), "w", format=self.format, container_options=options)
        self.width, self.height = info.width - info.width % 2, info.height - info.height % 2  # 4:2:0 needs even sizes
        self.time_base = info.time_base
        self.fps = info.fps
        self.video = self.container.add_stream(self.encoder, rate=info.fps)
        if self.format == "webm":
            self.video.options = {"crf": str(encoding.crf + 13), "b": "0", "row-mt": "1"}
        else:
            self.video.options = h264_options(self.encoder, encoding.crf)
        self.video.width, self.video.height, self.video.pix_fmt = self.width, self.height, "yuv420p"
        self.video.codec_context.time_base = info.time_base
        self.frames_written = 0
        self._last_pts: int | None = None
        self._offset = 0  # added to source timestamps after they jumped back
        self._audio = _AudioCopier(audio_source, self.container, self.format) if audio_source else None

    def _timestamp(self, pts: int | None) -> int:
        """The source's timestamp when it moves forward; the next frame's slot when it is missing,
        repeated or goes back (concatenated streams, packets without timestamps): the encoder and
        the muxer refuse timestamps that do not increase."""
        step = max(1, round(1 / (self.fps * self.time_base))) if self.fps else 1
        if self._last_pts is None:
            chosen = pts if pts is not None else 0
        elif pts is None:
            chosen = self._last_pts + step
        else:
            chosen = pts + self._offset
            if chosen <= self._last_pts:  # a jump back: later frames keep their spacing from here
                self._offset += self._last_pts + step - chosen
                chosen = self._last_pts + step
        self._last_pts = chosen
        return chosen

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
        frame.time_base = self.time_base
        frame.pts = self._timestamp(pts)
        self._mux(self.video.encode(frame))
        self.frames_written += 1
        if self._audio:
            self._audio.copy_until(float(frame.pts * self.time_base))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        try:
            self._mux(self.video.encode(None))
            if self._audio:
                self._audio.copy_until(float("inf"))
        finally:
            self.abort()

    def abort(self) -> None:
        """Release everything without flushing (the partial file is discarded by the caller)."""
        if self._audio:
            self._audio.close()
        self.container.close()


def decodable_audio(container: av.container.InputContainer) -> av.AudioStream | None:
    """The first audio track FFmpeg can decode: one whose codec it does not know can be neither
    copied nor transcoded, so the video comes out without it rather than not at all."""
    return next((s for s in container.streams.audio if s.codec_context is not None), None)


DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def named_layout(layout: av.AudioLayout, channels: int) -> av.AudioLayout:
    """A layout encoders accept: PCM in AVI often says only "2 channels" (no order), which
    AAC and Opus refuse; FFmpeg's default order for that many channels is what players assume."""
    if layout.name.endswith("channels") and channels in DEFAULT_LAYOUTS:
        return av.AudioLayout(DEFAULT_LAYOUTS[channels])
    return layout


class _AudioCopier:
    """Moves the first audio track of a source file into an output container, in time order."""

    def __init__(self, source: Path, output: av.container.OutputContainer, fmt: str) -> None:
        self.input = av.open(str(source))
        self.stream = decodable_audio(self.input)
        self.packets = self.input.demux(self.stream) if self.stream else iter(())
        self.pending: av.Packet | None = None
        self.output = output
        self.finished = self.stream is None
        if self.stream is None:
            return
        codec_name = CODEC_ALIASES.get(self.stream.codec_context.name, self.stream.codec_context.name)
        self.transcode = codec_name not in AUDIO_COPYABLE[fmt]
        if not self.transcode:
            self.out_stream = output.add_stream_from_template(self.stream)
        else:  # the container cannot hold the source codec
            codec, rate = (
                ("libopus", 48000) if fmt == "webm" else ("aac", self.stream.codec_context.sample_rate or 48000)
            )
            self.out_stream = output.add_stream(codec, rate=rate)
            layout = named_layout(self.stream.codec_context.layout, self.stream.codec_context.channels)
            self.out_stream.layout = layout
            self.resampler = av.AudioResampler(
                format=self.out_stream.codec_context.format or "fltp",
                layout=layout,
                rate=self.out_stream.codec_context.sample_rate,
                frame_size=self.out_stream.codec_context.frame_size or None,
            )
            self.samples_out = 0  # the encoded audio's own timeline: source timestamps may be odd or absent

    def copy_until(self, seconds: float) -> None:
        while not self.finished:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                if self.transcode:
                    self._encode(None)
                self.finished = True
                return
            if packet.dts is None:  # demuxer flush packet
                continue
            if packet.pts is not None and float(packet.pts * packet.time_base) > seconds:
                self.pending = packet
                return
            if not self.transcode:
                packet.stream = self.out_stream
                self.output.mux(packet)
            else:
                for frame in packet.decode():
                    self._encode(frame)

    def _encode(self, frame: av.AudioFrame | None) -> None:
        if frame is not None:
            frame.pts = None  # the resampler keeps its own count
        for resampled in self.resampler.resample(frame):
            resampled.pts, resampled.time_base = self.samples_out, Fraction(1, resampled.sample_rate)
            self.samples_out += resampled.samples
            for packet in self.out_stream.encode(resampled):
                self.output.mux(packet)
        if frame is None:
            for packet in self.out_stream.encode(None):
                self.output.mux(packet)

    def close(self) -> None:
        self.input.close()
