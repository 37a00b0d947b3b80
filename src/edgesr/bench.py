"""Speed: time models upscaling to Full-HD outputs against baselines measured in the same run.

As in the paper, the input of a scale-s model is (1080/s) x (1920/s), so every model makes the same
1920 x 1080 output. Each model is timed upscaling a uint8 luma plane to a uint8 plane through the
chosen backend, interleaved round by round with the baselines on the same input (OpenCV resize
INTER_CUBIC, Pillow BICUBIC, torch bicubic interpolate and the torch reference forward of the
same model), so a busy machine slows them alike and the ratios stay meaningful. Medians are
reported with the interquartile spread; the machine's peak is a GEMM of the same dtype timed in
the same process, in the same rounds as each model (``gemm_gflops_<device>``, median rate;
for the user-call pipelines in its own rounds right after the model's, see `bench`).
On a GPU the model runs on tensors already there (fp16 by default) and each sample is the mean
of `GPU_BURST` back-to-back calls. When the engine is not the torch forward itself (the Triton
kernels, CUDA graphs) the torch forward runs in the same rounds (``torch_reference``), and so do
the end-to-end user call on a uint8 RGB array including both transfers (``rgb_e2e``) and a
device-to-device copy, the practical memory bandwidth the kernel's bytes are compared with
(``bandwidth_fraction_<device>``). ``energy=True`` adds joules per frame and average watts
from the device's own counter (`edgesr.energy`) over a loop of the engine alone, or says why
there is none.

Rows use the shared results format: ``{id: {"speed_cpu": fps, "ms_cpu": median ms, ...}}`` (the
suffix is the device type).

>>> macs("eSR-TM_s2_K7_C16", 1080, 1920)   # 2*4*16 channels x 49 taps per LR pixel
3251404800
"""

from __future__ import annotations

import math
import os
import platform
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgesr.energy import EnergyCounter, measure, open_counter
from edgesr.errors import EdgesrError
from edgesr.models import ModelSpec, create_model, family_of
from edgesr.models.spec import parse_model_name

#: The models of the issue's speed table.
DEFAULT_MODELS = ("eSR-TM_s2_K7_C16", "eSR-TR_s2_K7_C16", "eSR-MAX_s2_K3_C2", "eSR-MAX_s3_K3_C1",
                  "Bicubic_s2")
FULL_HD = (1080, 1920)


def macs(spec: ModelSpec | str, out_h: int, out_w: int) -> int:
    """Multiply-accumulates of the model's reference forward for an ``out_h`` x ``out_w`` output.

    Counts the convolutions as the reference runs them (input (out_h/s) x (out_w/s)); softmax,
    max and pixel shuffle are not multiply-adds and are not counted. Bicubic counts its polyphase
    convolution (s*s phases of T x T taps).
    """
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    s = spec.scale
    pixels = math.ceil(out_h / s) * math.ceil(out_w / s)
    per_pixel = family_of(spec).macs_per_pixel(spec)
    return per_pixel * pixels


@dataclass
class Timing:
    """Seconds of repeated runs of one callable."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.seconds)) * 1e3

    @property
    def spread_ms(self) -> float:
        """Interquartile range in ms."""
        q1, q3 = np.percentile(self.seconds, [25, 75])
        return float(q3 - q1) * 1e3


#: Back-to-back calls per timed sample on a GPU (`time_interleaved`'s ``burst``).
GPU_BURST = 10


def time_interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                     sync: Callable[[], None] | None = None,
                     budget_s: float | None = None, burst: int = 1, warm: bool = False) -> dict[str, Timing]:
    """Time every callable ``repeats`` times, one round of all of them after another.

    Each round runs the callables in a new (seeded) random order, so that each follows every
    other about equally often: a call right after OpenCV's resize measured 2x slower on a 2-core
    box (its pool threads keep spinning for a while after a job), and a fixed or rotated order
    (a rotation keeps who-follows-whom) gave that penalty always to the same row.

    ``sync`` runs after each sample inside the timed region (CUDA: ``torch.cuda.synchronize``).
    Each sample is ``burst`` back-to-back calls (one ``sync`` after them), divided by ``burst``:
    a GPU left idle while the CPU baselines ran starts the next call late, and a lone call
    would carry that wake-up (on an H100 a Full-HD eSR-MAX_s2_K3_C2 took 0.37 ms timed alone
    after Pillow, 0.11 ms right after another GPU call).
    After ``budget_s`` seconds of a callable's runs (and at least 3 samples) it is not run again.
    ``warm``: each sample comes right after one untimed call of the same callable, as in a
    user's loop over photos or frames. Without it a sample after Pillow, the GEMM or the torch
    forward starts with their data in the caches: on the 2-core box the same RGB call measured
    1.6-2.0x slower in some runs than in a loop, OpenCV's less so.
    """
    sync = sync or (lambda: None)
    for fn in calls.values():
        for _ in range(warmup):
            fn()
            sync()
    timings = {name: Timing() for name in calls}
    names, shuffler = list(calls), random.Random(0)
    for _ in range(max(1, repeats)):
        for name in shuffler.sample(names, len(names)):
            fn = calls[name]
            t = timings[name]
            if budget_s is not None and len(t.seconds) >= 3 and sum(t.seconds) * burst > budget_s:
                continue
            if warm:
                fn()
                sync()
            start = time.perf_counter()
            for _ in range(burst):
                fn()
            sync()
            t.seconds.append((time.perf_counter() - start) / burst)
    return timings


def gemm_call(dtype: torch.dtype = torch.float32, device: str = "cpu",
              size: int | None = None) -> tuple[Callable[[], object], float]:
    """A square matrix product to time and its FLOP count (1024^3 on CPU, 8192^3 on CUDA)."""
    size = size or (1024 if device == "cpu" else 8192)
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.rand(size, size, generator=generator).to(device=device, dtype=dtype)
    return (lambda: torch.mm(a, b)), 2.0 * size**3


def gemm_peak(dtype: torch.dtype = torch.float32, device: str = "cpu", size: int | None = None,
              repeats: int = 10) -> float:
    """Best GFLOP/s of a square matrix product in this process (the machine's practical peak)."""
    call, flops = gemm_call(dtype, device, size)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    timing = time_interleaved({"gemm": call}, repeats, warmup=2, sync=sync)
    return flops / min(timing["gemm"].seconds) / 1e9


def environment(device: str, threads: int) -> dict[str, str]:
    """Where and with what the numbers were measured."""
    if device.startswith("cuda"):
        machine = torch.cuda.get_device_name(torch.device(device))
    else:
        machine = _cpu_name() or platform.processor() or platform.machine()
    libraries = [f"torch {torch.__version__}", f"numpy {np.__version__}"]
    for module in ("cv2", "PIL"):
        try:
            libraries.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return {"machine": f"{machine}, {threads} threads ({os.cpu_count()} cpus)",
            "libraries": ", ".join(libraries)}


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def expand_models(models: list[str], scale: int | None) -> list[str]:
    """Model ids to bench: ``Bicubic`` alone means ``Bicubic_s<scale>``; ``--scale`` keeps only
    models of that scale. Malformed ids raise `EdgesrError`."""
    ids = []
    for name in models or DEFAULT_MODELS:
        spec = parse_model_name(name, scale or 2)
        if scale is None or spec.scale == scale:
            ids.append(spec.id)
    if not ids:
        raise EdgesrError(f"no model among {', '.join(models)} has scale {scale}")
    return ids


def _engine_u8(backend):
    """uint8 plane (H, W) -> uint8 (sH, sW) through ``backend`` (model sees x/255)."""
    if getattr(backend, "name", "") == "fused":
        return lambda x: backend.run(x[None], np.uint8, (1 / 255, 0.0), (255.0, 0.0))[0]

    def run(x: np.ndarray) -> np.ndarray:
        lr = torch.from_numpy(x)[None, None].to(torch.float32).div_(255.0)
        out = backend(lr)
        return out.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)[0, 0].numpy()

    return run


#: What `bench` times as the engine: the luma kernel, or the call a user makes on an array.
PIPELINES = ("luma", "gray", "rgb", "rgb16")


def pipeline_image(pipeline: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """The array a pipeline's user call gets: gray (H, W) uint8, RGB (H, W, 3) uint8 or uint16."""
    if pipeline == "rgb16":
        return rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)
    if pipeline == "rgb":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return rng.integers(0, 256, (h, w), dtype=np.uint8)


def _user_upscaler(model_id: str | nn.Module, backend: str, device: str, dtype: str,
                   weights: str | os.PathLike | None = None, precision: str = "fp32"):  # noqa: ANN202
    """``Upscaler(id, pretrained=...)`` as a user builds it (a module as given; ``weights``, else
    shipped weights when there are some, else fresh ones: the speed does not depend on the values)."""
    from edgesr.engine import Upscaler
    from edgesr.weights import shipped_manifest

    if isinstance(model_id, nn.Module):
        return Upscaler(model_id, backend=backend, device=device, dtype=dtype, precision=precision)
    if weights is not None:
        return Upscaler(model_id, weights=str(weights), backend=backend, device=device, dtype=dtype,
                        precision=precision)
    shipped = model_id in shipped_manifest()["models"]
    return Upscaler(model_id, pretrained=shipped, backend=backend, device=device, dtype=dtype, precision=precision)


def _resident_call(engine, reference, lr: torch.Tensor) -> Callable[[], object]:  # noqa: ANN001
    """The engine on a tensor already on its device, output left there: the kernel time."""
    if getattr(engine, "name", "") == "triton":
        return lambda: engine.forward(lr, out_dtype=lr.dtype)
    if getattr(engine, "name", "") == "cudagraph":
        return lambda: engine.forward(lr)
    return lambda: reference(lr)


def copy_call(device: str, megabytes: int = 256) -> tuple[Callable[[], object], float]:
    """A device-to-device copy to time and the bytes it moves (read + write): the practical
    memory bandwidth of the same run."""
    source = torch.empty(megabytes << 20, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    return (lambda: target.copy_(source)), 2.0 * source.numel()


def bench(models: Sequence[str | nn.Module], backend: str = "auto", device: str = "cpu", threads: int | None = None,
          dtype: str | None = None, repeats: int = 10, size: tuple[int, int] = FULL_HD,
          baselines: bool = True, pipeline: str = "luma", energy: bool = False, energy_s: float = 2.0,
          weights: Mapping[str, str | os.PathLike] | None = None,
          precisions: Sequence[str] = ()) -> tuple[dict[str, dict], dict[str, object]]:
    """Time each model with the baselines interleaved.

    ``pipeline="luma"`` times the engine on a uint8 luma plane (the kernel); ``"gray"``, ``"rgb"``
    and ``"rgb16"`` time the user's call, ``Upscaler(id).upscale(array)`` on a gray, RGB uint8 or
    RGB uint16 array, next to the luma kernel (``kernel`` column) and OpenCV/Pillow resizing the
    same array. ``weights`` maps ids to weight files to load (e.g. the official ones); the others
    run freshly initialised weights (speed does not depend on the values). Returns (rows, info):
    rows keyed by model id in the shared results format, and
    info with the machine, library versions, GEMM peak and notes (skipped baselines).
    ``energy`` adds ``joules_per_frame_<device>``, ``watts_<device>`` and ``energy_counter`` (or
    ``energy_note``: why there is no counter), from at least ``energy_s`` s of the engine alone.
    ``precisions`` ("bf16", "int8", "fp16") time the fused kernel at each reduced precision in the
    same interleaved rounds as the fp32 engine: ``ms_engine_<p>_<device>`` and
    ``speedup_<p>`` (fp32 ms / its ms), so a speed-up is measured under the same load.
    """
    if pipeline not in PIPELINES:
        raise EdgesrError(f"unknown pipeline {pipeline!r}; choose {', '.join(PIPELINES)} (or video)")
    from edgesr.engine import make_backend, resolve_device, resolve_dtype

    dev = resolve_device(device)
    suffix = dev.type
    dtype = dtype or ("float16" if dev.type == "cuda" else "float32")
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch_dtype = resolve_dtype(dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    notes: list[str] = []
    cv2 = _optional_cv2(threads, notes) if baselines else None
    peak = gemm_peak(torch_dtype, str(dev))
    # The GEMM also runs in every model's rounds: on a shared machine the peak of the moment is
    # what a model's GFLOP/s compare with (a peak taken once drifted 2-4x under load here).
    gemm, gemm_flops = gemm_call(torch_dtype, str(dev))
    info: dict[str, object] = {**environment(str(dev), threads), "device": str(dev), "dtype": dtype,
                               "gemm_peak_gflops": peak, "notes": notes}
    counter, no_counter = None, None
    if energy:
        counter, no_counter = open_counter(str(dev))
        info["energy"] = counter.name if counter is not None else no_counter
    rows: dict[str, dict] = {}
    rng = np.random.default_rng(0)
    for item in models:
        spec = item.spec if isinstance(item, nn.Module) else ModelSpec.parse(item)
        s = spec.scale
        out_h, out_w = size
        h, w = math.ceil(out_h / s), math.ceil(out_w / s)
        plane = rng.integers(0, 256, (h, w), dtype=np.uint8)
        weight_file = (weights or {}).get(spec.id)
        # A module runs as given; an id runs ``weights``, else fresh weights for the kernel (its
        # speed does not depend on their values).
        model = item if isinstance(item, nn.Module) else create_model(spec, weights=weight_file)
        engine = make_backend(backend, model, device=str(dev), dtype=dtype)
        reference = model.to(device=dev, dtype=torch_dtype).eval()
        lr = torch.from_numpy(plane)[None, None].to(device=dev, dtype=torch_dtype) / 255.0
        calls: dict[str, Callable[[], object]] = {}
        if pipeline != "luma":
            array = pipeline_image(pipeline, h, w, rng)
            user = _user_upscaler(item, backend, str(dev), dtype, weight_file)
            calls["engine"] = lambda f=user.upscale, x=array: f(x)
            if dev.type == "cpu":
                calls["kernel"] = lambda r=_engine_u8(engine), x=plane: r(x)
        elif dev.type == "cuda" or getattr(engine, "name", "") == "triton":  # on resident tensors
            calls["engine"] = _resident_call(engine, reference, lr)
            if getattr(engine, "name", "") not in ("torch", "onnxruntime"):
                calls["torch_reference"] = lambda m=reference, x=lr: m(x)
            rgb = pipeline_image("rgb", h, w, rng)
            calls["rgb_e2e"] = lambda f=_user_upscaler(item, backend, str(dev), dtype).upscale, x=rgb: f(x)
            calls["copy"], copy_bytes = copy_call(str(dev), 256 if dev.type == "cuda" else 16)
        else:
            run = _engine_u8(engine)
            calls["engine"] = lambda r=run, x=plane: r(x)
            calls["torch_reference"] = lambda m=reference, x=lr: m(x)
        for precision in precisions:
            if pipeline == "luma":
                variant = make_backend(backend, model, device=str(dev), dtype=dtype, precision=precision)
                calls[f"engine_{precision}"] = lambda r=_engine_u8(variant), x=plane: r(x)
            else:
                calls[f"engine_{precision}"] = lambda f=_user_upscaler(spec.id, backend, str(dev), dtype, weight_file,
                                                                       precision=precision).upscale, x=array: f(x)
        if pipeline == "luma":
            calls["gemm"] = gemm
        if baselines:
            from PIL import Image  # Pillow and OpenCV run on the CPU whatever the device

            same = plane if pipeline == "luma" else array  # the baselines resize what the engine gets
            if pipeline == "luma":
                calls["torch_bicubic"] = lambda x=lr, f=s: torch.nn.functional.interpolate(
                    x, scale_factor=f, mode="bicubic", align_corners=False)
            if pipeline != "rgb16":  # Pillow has no 16-bit RGB
                calls["pillow"] = lambda x=same, o=(w * s, h * s): np.asarray(
                    Image.fromarray(x).resize(o, Image.BICUBIC))
            if cv2 is not None:
                calls["opencv"] = lambda x=same, o=(w * s, h * s): cv2.resize(
                    x, o, interpolation=cv2.INTER_CUBIC)
        with torch.inference_mode():
            timings = time_interleaved(calls, repeats, sync=sync, budget_s=10.0,
                                       burst=GPU_BURST if dev.type == "cuda" else 1, warm=pipeline != "luma")
        if pipeline != "luma":
            # In its own rounds right after: torch's threads keep spinning after a GEMM, and the
            # user call timed next measured 2.5x slower on the 2-core box (OpenCV's 2.3x).
            timings.update(time_interleaved({"gemm": gemm}, repeats, sync=sync, budget_s=10.0))
        gemm_rate = gemm_flops / (timings.pop("gemm").median_ms * 1e-3) / 1e9
        copy = timings.pop("copy", None)
        rows[spec.id] = row = _row(spec, timings, suffix, gemm_rate, (h * s, w * s),
                                   getattr(engine, "name", backend), threads)
        row["pipeline"] = pipeline
        for precision in precisions:
            row[f"speedup_{precision}"] = row[f"ms_{suffix}"] / row[f"ms_engine_{precision}_{suffix}"]
        if copy is not None:  # bytes the kernel must move: the LR input and the HR output
            moved = (h * w + h * s * w * s) * torch.empty(0, dtype=torch_dtype).element_size()
            row[f"gbs_{suffix}"] = moved / (row[f"ms_{suffix}"] * 1e-3) / 1e9
            row[f"copy_gbs_{suffix}"] = copy_bytes / (copy.median_ms * 1e-3) / 1e9
            row[f"bandwidth_fraction_{suffix}"] = row[f"gbs_{suffix}"] / row[f"copy_gbs_{suffix}"]
        if energy:
            _add_energy(row, calls["engine"], counter, no_counter, suffix, energy_s, sync)
    info["pipeline"] = pipeline
    return rows, info


def _add_energy(row: dict[str, object], call: Callable[[], object], counter: EnergyCounter | None,
                reason: str | None, suffix: str, seconds: float, sync: Callable[[], None] | None) -> None:
    """Joules per frame and watts of ``call`` alone from ``counter``, or why there are none."""
    if counter is None:
        row["energy_note"] = reason
        return
    with torch.inference_mode():
        reading = measure(call, counter, seconds, sync)
    row[f"joules_per_frame_{suffix}"] = reading.joules_per_frame
    row[f"watts_{suffix}"] = reading.watts
    row["energy_counter"] = reading.counter


def _optional_cv2(threads: int, notes: list[str]):
    try:
        import cv2
    except ImportError:
        notes.append("OpenCV baseline skipped: install the 'bench' extra (opencv-python-headless)")
        return None
    cv2.setNumThreads(threads)
    return cv2


def _row(spec: ModelSpec, timings: dict[str, Timing], suffix: str, peak: float,
         out_size: tuple[int, int], backend: str, threads: int) -> dict[str, object]:
    engine = timings["engine"]
    ms = engine.median_ms
    count = macs(spec, *out_size)
    gflops = 2.0 * count / (ms * 1e-3) / 1e9
    row: dict[str, object] = {
        f"speed_{suffix}": 1e3 / ms,
        f"ms_{suffix}": ms,
        f"spread_ms_{suffix}": engine.spread_ms,
        "backend": backend,
        "threads": threads,
        "macs": count,
        f"gflops_{suffix}": gflops,
        f"gemm_gflops_{suffix}": peak,
        f"peak_fraction_{suffix}": gflops / peak,
    }
    for name, timing in timings.items():
        if name == "engine":
            continue
        row[f"ms_{name}_{suffix}"] = timing.median_ms
        row[f"ratio_vs_{name}"] = ms / timing.median_ms  # < 1: the engine is faster
    if "torch_reference" in timings:
        row["speedup_vs_torch_reference"] = timings["torch_reference"].median_ms / ms
    return row


def make_test_clip(path: str | os.PathLike, size: tuple[int, int], frames: int, fps: int = 30,
                   audio: bool = True) -> Path:
    """A synthetic H.264 clip (moving gradients and edges) with an AAC tone, for the video bench."""
    from fractions import Fraction

    from edgesr.video import _av

    av = _av()
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=Fraction(fps), options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = out.add_stream("aac", rate=44100) if audio else None
        for i in range(frames):
            rgb = np.stack([128 + 100 * np.sin((x + 4 * i) / 17.0), 128 + 100 * np.cos((y - 3 * i) / 23.0),
                            255.0 * (((x + y + 5 * i) // 32) % 2)], axis=-1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            samples = 44100 * frames // fps
            tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)
            chunk = 1024
            for start in range(0, samples, chunk):
                piece = av.AudioFrame.from_ndarray(tone[None, start:start + chunk].astype(np.float32),
                                                   format="fltp", layout="mono")
                piece.sample_rate, piece.pts = 44100, start
                out.mux(sound.encode(piece))
            out.mux(sound.encode(None))
    return Path(path)


def bench_video(model_id: str, size: tuple[int, int] = (480, 640), frames: int = 90,
                threads: int | None = None, repeats: int = 3, backend: str = "auto",
                codec: str | None = None, options: dict[str, str] | None = None) -> dict[str, object]:
    """Frames per second of ``edgesr upscale clip.mp4`` (decode + upscale + encode, overlapped)
    next to decode + encode alone at the same output size and settings, and the upscaling alone
    on decoded frames; runs interleaved, medians. ``size`` is the input (H, W)."""
    import tempfile
    from fractions import Fraction

    from edgesr.stages import run_stages
    from edgesr.video import FrameUpscaler, _add_video_stream, _av, _plane, upscale_video

    av = _av()
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    upscaler = _user_upscaler(model_id, backend, "cpu", "float32")
    upscale_frame = FrameUpscaler(upscaler)
    with tempfile.TemporaryDirectory(prefix="edgesr-bench-") as folder:
        clip = make_test_clip(Path(folder) / "clip.mp4", size, frames)
        with av.open(str(clip)) as container:
            decoded = [f.reformat(format="yuv420p") for f in container.decode(video=0)]
        # decode+encode alone must encode the same pictures the full run encodes (x264 is far
        # faster on a repeated still frame), so the upscaled frames are made once, up front
        upscaled = [upscale_frame(frame) for frame in decoded]
        template = upscaled[0]

        def full() -> None:
            upscale_video(upscaler, clip, Path(folder) / "out.mp4", codec=codec, options=options)

        def kernel_only() -> None:
            for frame in decoded:
                upscale_frame(frame)

        def codecs_only() -> None:  # the same stages with a ready-made output frame
            with av.open(str(clip)) as source, av.open(str(Path(folder) / "codecs.mp4"), "w") as out:
                stream = source.streams.video[0]
                rate = stream.average_rate or Fraction(30)
                encoder = _add_video_stream(out, rate, template.width, template.height, stream.time_base,
                                            codec, options)
                ready = iter(upscaled)

                def same_frame(frame):  # noqa: ANN001, ANN202 - a copy: encoders keep references
                    out_frame, picture = av.VideoFrame(template.width, template.height, "yuv420p"), next(ready)
                    for index in range(3):
                        _plane(out_frame, index)[...] = _plane(picture, index)
                    out_frame.pts, out_frame.time_base = frame.pts, frame.time_base
                    return out_frame

                run_stages((f for p in source.demux(stream) for f in p.decode()), same_frame,
                           lambda f: out.mux(encoder.encode(f)))
                out.mux(encoder.encode(None))

        cpu: dict[str, list[float]] = {"full": [], "kernel": [], "codecs": []}

        def with_cpu(name: str, fn: Callable[[], None]) -> Callable[[], None]:
            def call() -> None:  # process CPU time: every thread, FFmpeg's and the kernel's
                start = time.process_time()
                fn()
                cpu[name].append(time.process_time() - start)
            return call

        timings = time_interleaved({"full": with_cpu("full", full), "kernel": with_cpu("kernel", kernel_only),
                                    "codecs": with_cpu("codecs", codecs_only)}, repeats)
    fps = {name: frames / (t.median_ms / 1e3) for name, t in timings.items()}
    # The rate at which the cores would do both jobs' work one after the other, each at its
    # speed alone: 1 / (1/kernel + 1/codecs). Not a hard limit: decode+encode alone leaves part
    # of the cores idle (x264 used ~1.75 of 2 here), and the full run can fill those gaps.
    ceiling = 1.0 / (1.0 / fps["kernel"] + 1.0 / fps["codecs"])
    return {"model": model_id, "frames": frames, "input": f"{size[1]}x{size[0]}",
            "output": f"{template.width}x{template.height}", "threads": threads,
            "fps_full": fps["full"], "fps_kernel": fps["kernel"], "fps_decode_encode": fps["codecs"],
            "fps_shared_cores_ceiling": ceiling,
            **{f"cpu_ms_per_frame_{name}": 1e3 * float(np.median(values)) / frames for name, values in cpu.items()},
            "ratio_vs_slowest_stage": fps["full"] / min(fps["kernel"], fps["codecs"]),
            "ratio_vs_ceiling": fps["full"] / ceiling}

