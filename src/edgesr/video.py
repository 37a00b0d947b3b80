"""Video upscaling with PyAV: decode, upscale the planes, encode, keep timing and audio.

Frames are upscaled on their YUV planes, with no RGB round trip: Y (studio range, 16..235, as
the models were trained; full-range video is read as 0..255) goes through the model, U and V
through bicubic, each at s times the size, so the output is again 4:2:0. Other pixel formats are
converted to 8-bit ``yuv420p`` first. Timestamps (pts and time base) and the frame rate are kept;
audio streams are copied packet for packet (re-encoded to AAC only when the output container
cannot hold their codec). Decoding, upscaling and encoding overlap (`edgesr.stages`: decoder
and encoder threads around the model). The output is written to a temporary file and renamed at
the end, so an interrupted run leaves no partial file. Needs the ``video`` extra (``pip install edgesr[video]``).

>>> from edgesr import Upscaler
>>> upscale_video(Upscaler("Bicubic_s2"), "clip.mp4", "clip_x2.mp4")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from edgesr.atomic import atomic_path
from edgesr.errors import EdgesrError
from edgesr.imaging import LUMA_BLACK, LUMA_RANGE, luma_to_model, model_to_luma
from edgesr.progress import Progress, Reporter, ignore
from edgesr.stages import run_stages

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")

#: (codec, encoder options) tried in order for the output; x264 at CRF 18 is visually lossless.
DEFAULT_CODECS = (("libx264", {"crf": "18", "preset": "medium"}), ("mpeg4", {}))


def is_video_path(path: str | os.PathLike) -> bool:
    """True when the file name has a video extension edgesr reads and writes."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _av():  # noqa: ANN202
    try:
        import av
    except ImportError:
        raise EdgesrError("video needs PyAV; pip install 'edgesr[video]'") from None
    return av


@dataclass
class VideoReport:
    """What `upscale_video` did."""

    source: Path
    target: Path
    frames: int
    size: tuple[int, int]  # output (width, height)
    fps: float  # frame rate of the stream
    seconds: float  # wall time
    codec: str
    audio: str  # "copied", "re-encoded to aac", "none" or "dropped (...)"


def _plane(frame, index: int) -> np.ndarray:  # noqa: ANN001
    """Plane ``index`` of a frame as a (height, width) uint8 view of its buffer (rows strided)."""
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: plane.height, : plane.width]


class FrameUpscaler:
    """Upscales ``yuv420p`` frames: Y by the model, U/V by bicubic; returns a new VideoFrame.

    Output size is s*W x s*H rounded down to even numbers (4:2:0 encoders need even sizes). With
    the fused kernel, planes are read from the decoded frame and written into the new frame's
    buffers in place (uint8 in, uint8 out, no float planes); other backends run the model on a
    float plane and the kernel still does the chroma.
    """

    def __init__(self, upscaler) -> None:  # noqa: ANN001
        from edgesr.engine.fused import FusedBackend
        from edgesr.engine.triton_backend import TritonBackend

        self.upscaler, self.scale = upscaler, upscaler.scale
        # Both take uint8 planes in and give uint8 planes out (the Triton one on the device).
        self._fused = isinstance(upscaler.backend, (FusedBackend, TritonBackend))

    def __call__(self, frame):  # noqa: ANN001, ANN204
        av = _av()
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        full_range = getattr(frame, "color_range", 0) == 2  # AVCOL_RANGE_JPEG
        s = self.scale
        width, height = s * frame.width // 2 * 2, s * frame.height // 2 * 2
        out = av.VideoFrame(width, height, "yuv420p")
        self._luma(_plane(frame, 0), _plane(out, 0), full_range)
        for index in (1, 2):
            self._into(_plane(frame, index), _plane(out, index), self.upscaler.bicubic_plane)
        out.pts, out.time_base = frame.pts, frame.time_base
        for name in ("color_range", "colorspace", "color_primaries", "color_trc"):
            try:
                setattr(out, name, getattr(frame, name))
            except (AttributeError, ValueError, TypeError):
                pass
        return out

    def _luma(self, y: np.ndarray, target: np.ndarray, full_range: bool) -> None:
        """Y (studio range 16..235, or full range 0..255) through the model into ``target``."""
        up = self.upscaler
        if self._fused:
            # studio: the model sees luma_to_model(Y) and Y' = model_to_luma(o), as affine maps
            black, span = LUMA_BLACK, LUMA_RANGE
            in_affine, out_affine, clamp = (((1 / 255, 0.0), (255.0, 0.0), (0.0, 255.0)) if full_range else
                                            ((1 / span, -black / span), (span, black), (black, black + span)))

            def run(src: np.ndarray, dst: np.ndarray) -> None:
                up.backend.run(src[None], np.uint8, in_affine, out_affine, clamp,
                               border=up.border == "replicate", out=dst[None])

            self._into(y, target, run)
            return
        planes = torch.from_numpy(y.astype(np.float32))[None, None]
        planes = planes / 255.0 if full_range else luma_to_model(planes)
        result = up.run_model(planes)[0, 0]
        result = 255.0 * result.clamp(0.0, 1.0) if full_range else model_to_luma(result)
        rows, cols = target.shape
        target[...] = result[:rows, :cols].round().clamp(0, 255).to(torch.uint8).numpy()

    def _into(self, src: np.ndarray, target: np.ndarray, run) -> None:  # noqa: ANN001
        """``run(src, dst)`` straight into ``target`` when the sizes match; else through a
        temporary cropped to it (odd sizes: the output frame is rounded down to even)."""
        s = self.scale
        if target.shape == (src.shape[0] * s, src.shape[1] * s):
            run(src, target)
            return
        full = np.empty((src.shape[0] * s, src.shape[1] * s), np.uint8)
        run(src, full)
        target[...] = full[: target.shape[0], : target.shape[1]]


def _add_video_stream(output, rate: Fraction, width: int, height: int, time_base: Fraction,  # noqa: ANN001
                      codec: str | None, options: dict[str, str] | None):
    av = _av()
    # Options given without a codec tune the default x264 encoder (CRF, preset), not the fallback.
    choices = [(codec, options or {})] if codec else [
        (name, {**defaults, **(options or {})} if name == "libx264" else defaults)
        for name, defaults in DEFAULT_CODECS]
    errors = []
    for name, opts in choices:
        try:
            stream = output.add_stream(name, rate=rate, options=dict(opts))
        except (ValueError, av.error.FFmpegError) as error:  # codec missing in this FFmpeg build
            errors.append(f"{name}: {error}")
            continue
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if "avi" not in output.format.name:
            # Encode in the source's time base so that every pts survives (variable frame rate
            # too); AVI stores a constant rate as its time base, and PyAV rescales pts to it.
            stream.codec_context.time_base = time_base
        return stream
    raise EdgesrError(f"no usable video encoder ({'; '.join(errors)})")


def _can_copy(format_name: str, source: Path, index: int) -> bool:
    """Whether the muxer takes audio stream ``index`` of ``source`` as it is: its first packets
    are muxed into an in-memory file (FFmpeg's codec lists accept e.g. PCM without a channel
    layout in MP4, which fails only when the file is finished)."""
    import io

    av = _av()
    probe = None
    try:
        with av.open(str(source)) as container:
            stream = container.streams[index]
            probe = av.open(io.BytesIO(), "w", format=format_name)
            target = probe.add_stream_from_template(stream)
            for n, packet in enumerate(container.demux(stream)):
                if packet.dts is not None:
                    packet.stream = target
                    probe.mux(packet)
                if n >= 8:
                    break
            probe.close()
        return True
    except Exception:  # noqa: BLE001 - a probe: any failure means the stream cannot be copied
        return False


def _add_audio_streams(output, streams, source: Path) -> tuple[dict, str]:  # noqa: ANN001
    """Map each input audio stream to (output stream, copy?) and describe what happens."""
    supported = getattr(output, "supported_codecs", None) or ()
    plan, notes = {}, []
    for stream in streams:
        context = stream.codec_context  # None when FFmpeg knows no decoder for the stream
        name = context.name if context is not None else "an unknown codec"
        if _can_copy(output.format.name.split(",")[0], source, stream.index):
            plan[stream.index] = (output.add_stream_from_template(stream), True)
            notes.append("copied")
        elif context is not None and "aac" in supported:
            out = output.add_stream("aac", rate=stream.codec_context.sample_rate)
            plan[stream.index] = (out, False)
            notes.append(f"re-encoded {name} to aac")
        else:
            notes.append(f"dropped ({name} does not fit the output container)")
    return plan, ", ".join(notes) or "none"


def _close_quietly(output) -> None:  # noqa: ANN001
    with contextlib.suppress(Exception):  # the error already propagating is the one to report
        output.close()


def upscale_video(upscaler, source: str | os.PathLike, target: str | os.PathLike,  # noqa: ANN001
                  codec: str | None = None, options: dict[str, str] | None = None,
                  progress: Reporter | None = None) -> VideoReport:
    """Upscale the first video stream of ``source`` into ``target`` with an `edgesr.Upscaler`.

    Args:
        codec, options: encoder name and options (default libx264 CRF 18 preset medium, else
            mpeg4); options without a codec adjust the libx264 defaults, e.g. {"crf": "23"}.
        progress: `edgesr.progress` reporter: "start" (``total`` frames when the container
            says) and an "advance" event per frame (``done`` so far, ``values["fps"]``); raising
            from it (e.g. KeyboardInterrupt) stops the job and leaves no output.
    Returns:
        a `VideoReport`. Raises `EdgesrError` for unreadable inputs or unusable outputs; nothing
        is left at ``target`` unless the whole video was written.
    """
    av = _av()
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise EdgesrError(f"{source}: no such file")
    if target.exists() and target.resolve() == source.resolve():
        raise EdgesrError(f"{target}: output would overwrite the input; choose another -o")
    started = time.perf_counter()
    upscale_frame = FrameUpscaler(upscaler)
    try:
        container = av.open(str(source))
    except av.error.FFmpegError as error:
        raise EdgesrError(f"{source}: cannot open as video ({error})") from None
    with container:
        if not container.streams.video:
            raise EdgesrError(f"{source}: no video stream")
        video = container.streams.video[0]
        if video.codec_context is None:
            raise EdgesrError(f"{source}: no decoder for its video stream (damaged or unknown codec)")
        video.thread_type = "AUTO"
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        width = upscaler.scale * video.codec_context.width // 2 * 2
        height = upscaler.scale * video.codec_context.height // 2 * 2
        audio_in = list(container.streams.audio)
        report = progress or ignore
        count = 0
        with atomic_path(target) as tmp:
            try:
                output = av.open(str(tmp), "w")
            except (ValueError, av.error.FFmpegError) as error:
                raise EdgesrError(f"{target}: cannot write this video format ({error})") from None
            try:
                stream = _add_video_stream(output, rate, width, height, video.time_base, codec, options)
                audio_plan, audio_note = _add_audio_streams(output, audio_in, source)
                report(Progress("video", "start", source.name, total=video.frames or None))

                def demuxed():  # producer thread: demux and decode
                    for packet in container.demux(video, *audio_in):
                        if packet.stream.type == "video":
                            yield from packet.decode()
                        elif packet.stream.index in audio_plan and packet.dts is not None:
                            yield packet

                def upscale(item):  # noqa: ANN001, ANN202 - this thread: the model
                    nonlocal count
                    if not isinstance(item, av.VideoFrame):
                        return item
                    if item.pts is None:
                        item.pts = count
                    result = upscale_frame(item)
                    count += 1
                    fps = count / max(time.perf_counter() - started, 1e-9)
                    report(Progress("video", "advance", source.name, units=1, done=count,
                                    total=video.frames or None, values={"fps": fps}))
                    return result

                def encode(item) -> None:  # noqa: ANN001 - consumer thread: encode and mux
                    if isinstance(item, av.VideoFrame):
                        output.mux(stream.encode(item))
                        return
                    out_stream, copy = audio_plan[item.stream.index]
                    if copy:
                        item.stream = out_stream
                        output.mux(item)
                    else:
                        for frame in item.decode():
                            frame.pts = None
                            output.mux(out_stream.encode(frame))

                run_stages(demuxed(), upscale, encode)
                if count == 0:
                    raise EdgesrError(f"{source}: the video stream has no decodable frames")
                output.mux(stream.encode(None))
                for out_stream, copy in audio_plan.values():
                    if not copy:
                        output.mux(out_stream.encode(None))
                codec_name = stream.codec_context.name
                output.close()  # writes the trailer: only now is the file complete
            except av.error.FFmpegError as error:
                _close_quietly(output)
                raise EdgesrError(f"{source} -> {target}: {error}") from None
            except BaseException:
                _close_quietly(output)  # Ctrl-C or a failing frame: atomic_path removes the file
                raise
    return VideoReport(source, target, count, (width, height), float(rate), time.perf_counter() - started,
                       codec_name, audio_note)
