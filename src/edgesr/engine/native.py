"""The fused C kernel (csrc/fused.c): compiled on first use with the system C compiler, cached.

Why compile at run time: the kernel is plain C (no Python or torch headers), so any compiler
builds it (9 s with gcc -O3 on the project's machine, once), and ``-march=native`` tunes it to
the machine that runs it (AVX-512 / AVX2 / NEON) with no binary wheels to ship. The shared
library is cached under the cache root (`edgesr.paths`) keyed by the source, the compiler and
the CPU.
Without a compiler (or with ``EDGESR_NATIVE=0``) `load` returns ``None`` and callers fall back to
the torch backends; `unavailable_reason` says why.

Calls go through ctypes, which releases the GIL; the kernel runs its own thread pool.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import tempfile
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from edgesr.errors import log
from edgesr.paths import cache_root

SOURCE = "fused.c"
FLAGS = ("-O3", "-fPIC", "-shared", "-pthread", "-fno-math-errno", "-std=gnu11")
_REASON: list[str] = []

_F, _I, _L, _P = ctypes.c_float, ctypes.c_int, ctypes.c_long, ctypes.c_void_p

#: Element type codes of the kernel's buffers.
TYPES = {np.dtype(np.float32): 0, np.dtype(np.uint8): 1, np.dtype(np.uint16): 2}
MAXP = 4  # planes and output channels of the colour pipeline
#: Arithmetic of the one-layer conv (the kernel's P_* codes); the rest always runs in fp32.
PRECISIONS = {"fp32": 0, "bf16": 1, "int8": 2, "fp16": 3}
#: What each reduced precision needs from the CPU (and the build, -march=native).
PRECISION_NEEDS = {"bf16": "x86 AVX512-BF16", "int8": "x86 AVX512-VNNI", "fp16": "ARMv8.2-A FP16 (aarch64)"}


class Buffer(ctypes.Structure):
    """An image buffer: pointer, element type, and strides in elements (pixel, row, image)."""

    _fields_ = [("ptr", _P), ("type", _I), ("pixel", _I), ("row", _L), ("plane", _L)]


class Filter(ctypes.Structure):
    """A one-layer model (weight in the model's channel order) or separable phase filters."""

    _fields_ = [("weight", _P), ("vert", _P), ("horz", _P), ("kh", _I), ("kw", _I),
                ("pad_top", _I), ("pad_left", _I), ("c", _I), ("mode", _I)]


class OutputMap(ctypes.Structure):
    """o * scale + offset, clamped to lo..hi for integer outputs."""

    _fields_ = [("scale", _F), ("offset", _F), ("lo", _F), ("hi", _F)]


class Color(ctypes.Structure):
    """The colour pipeline: planes mixed from input channels, filtered, mixed into outputs."""

    _fields_ = [("planes", _I), ("outs", _I), ("kind", _I * MAXP), ("coef", (_F * MAXP) * MAXP),
                ("offset", _F * MAXP), ("mat", (_F * MAXP) * MAXP), ("ooff", _F * MAXP), ("peak", _F)]


def cache_dir() -> Path:
    """Where compiled kernels live: ``native/`` under the cache root (`edgesr.paths.cache_root`)."""
    return cache_root() / "native"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_key() -> str:
    """CPU identity for the cache key: a library built with -march=native only runs where built."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            lines = [line for line in handle if line.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _run_compiler(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a compiler in its own process group, so that a timeout also ends cc1 and the
    assembler (killing only the driver left them compiling for minutes on a loaded machine)."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _build(compiler: str, source: Path, target: Path) -> str | None:
    """Compile ``source`` into ``target`` (atomically); returns an error text or None."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fused.", suffix=".so", dir=target.parent)
    os.close(fd)
    error = "no compile attempted"
    try:
        for arch in (["-march=native"], []):  # some compilers/targets lack -march=native
            result = _run_compiler([compiler, *FLAGS, *arch, "-o", tmp, str(source), "-lm"], timeout=120)
            if result.returncode == 0:
                os.replace(tmp, target)
                return None
            error = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["failed"]
            error = f"{compiler} failed: {error[0]}"
        return error
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{compiler} could not run: {exc}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@cache
def load() -> ctypes.CDLL | None:
    """The compiled kernel, building it on first use; ``None`` when it cannot be had.

    When it cannot be had (other than by ``EDGESR_NATIVE=0``), one warning on the ``edgesr``
    logger says why: the CLI prints it as one line, so a slow run on a machine without a compiler
    explains itself.
    """
    lib = _build_and_load()
    if lib is None and not _REASON[-1].startswith("disabled"):
        log.warning("fused C kernel unavailable (%s); using the torch forward instead (slower)", _REASON[-1])
    return lib


def _build_and_load() -> ctypes.CDLL | None:
    if os.environ.get("EDGESR_NATIVE", "1").lower() in ("0", "no", "off", "false"):
        _REASON.append("disabled by EDGESR_NATIVE=0")
        return None
    compiler = _compiler()
    if compiler is None:
        _REASON.append("no C compiler found (set CC, or install gcc/clang)")
        return None
    source = Path(str(files("edgesr.engine") / "csrc" / SOURCE))
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        _REASON.append(f"{compiler} could not run: {exc}")
        return None
    key = hashlib.sha256(b"\0".join([source.read_bytes(), " ".join(FLAGS).encode(),
                                     version.encode(), _cpu_key().encode()])).hexdigest()[:16]
    target = cache_dir() / f"fused-{key}.so"
    if not target.exists():
        error = _build(compiler, source, target)
        if error is not None:
            _REASON.append(error)
            return None
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as exc:
        _REASON.append(f"could not load {target}: {exc}")
        return None
    lib.edgesr_plane.restype = _I
    lib.edgesr_plane.argtypes = [_P, _P, _I, _I, _I, _I, _I, _P, _F, _F, _P, _I]
    lib.edgesr_color.restype = _I
    lib.edgesr_color.argtypes = [_P, _P, _I, _I, _I, _I, _I, _P, _P, _P, _P, _I]
    lib.edgesr_plane_p.restype = _I
    lib.edgesr_plane_p.argtypes = [*lib.edgesr_plane.argtypes, _I]
    lib.edgesr_color_p.restype = _I
    lib.edgesr_color_p.argtypes = [*lib.edgesr_color.argtypes, _I]
    lib.edgesr_precisions.restype = _I
    lib.edgesr_precisions.argtypes = []
    lib.edgesr_read_planes.restype = _I
    lib.edgesr_read_planes.argtypes = [_P, _I, _I, _I, _P, _P]
    return lib


def precisions() -> list[str]:
    """The conv precisions this machine's kernel runs ("fp32" first); [] without the kernel."""
    lib = load()
    if lib is None:
        return []
    mask = lib.edgesr_precisions()
    return [name for name, code in PRECISIONS.items() if mask >> code & 1]


def unavailable_reason() -> str | None:
    """Why `load` returned None (after it did), else None."""
    return _REASON[-1] if _REASON else None


def _check(code: int) -> None:
    if code == 1:
        raise ValueError("fused kernel: invalid arguments")
    if code != 0:
        raise MemoryError("fused kernel: out of memory")


def buffer(array: np.ndarray, pixel_axis: bool) -> Buffer:
    """A `Buffer` over ``array``: (N, H, W) planes, or (N, H, W, C) interleaved with ``pixel_axis``.

    Rows and images may be strided (a view into a larger array); pixels must be contiguous.
    """
    if array.dtype not in TYPES:
        raise ValueError(f"kernel buffers are float32, uint8 or uint16, not {array.dtype}")
    item = array.itemsize
    strides = [st // item for st in array.strides]
    if any(st * item != s for st, s in zip(strides, array.strides)) or min(array.strides, default=0) < 0:
        raise ValueError("kernel buffers need element-aligned, non-negative strides")
    channels = array.shape[3] if pixel_axis else 1
    if (pixel_axis and strides[3] != 1 and channels > 1) or strides[2] != channels:
        raise ValueError("kernel buffers need contiguous pixels")
    return Buffer(array.ctypes.data, TYPES[array.dtype], channels, strides[1], strides[0])


def filter_struct(weight: np.ndarray | None, vert: np.ndarray | None, horz: np.ndarray | None,
                  kernel: tuple[int, int], pad: tuple[int, int], channels: int, mode: int) -> Filter:
    """A `Filter`; the arrays must stay alive (and float32 C-contiguous) while it is used."""
    def ptr(a: np.ndarray | None) -> int | None:
        if a is None:
            return None
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            raise ValueError("filter arrays must be C-contiguous float32")
        return a.ctypes.data

    return Filter(ptr(weight), ptr(vert), ptr(horz), kernel[0], kernel[1], pad[0], pad[1], channels, mode)


def plane(x: np.ndarray, out: np.ndarray, filt: Filter, scale: int, border: bool, threads: int,
          in_affine: tuple[float, float] = (1.0, 0.0), out_map: tuple[float, float, float, float] =
          (1.0, 0.0, 0.0, 255.0), precision: int = 0) -> None:
    """One plane per image through ``filt``: x (N, H, W) -> out (N, sH, sW), in place.

    x is float32/uint8/uint16 and may have strided rows (video planes); the filter sees
    ``x * a + b`` for ``in_affine = (a, b)``; its output o leaves as ``o * c + d`` for
    ``out_map = (c, d, lo, hi)``, integer outputs clamped to lo..hi and rounded half to even.
    ``border``: replicate the edge pixels (True) or zero padding (False, the model's own).
    ``precision``: a `PRECISIONS` code for the conv of one-layer models (see `precisions`).
    """
    n, h, w = x.shape
    _check(load().edgesr_plane_p(ctypes.byref(buffer(x, False)), ctypes.byref(buffer(out, False)), n, h, w,
                                 scale, int(border), ctypes.byref(filt), in_affine[0], in_affine[1],
                                 ctypes.byref(OutputMap(*out_map)), threads, precision))


def color(x: np.ndarray, out: np.ndarray, model: Filter | None, chroma: Filter | None, spec: Color,
          scale: int, border: bool, threads: int, pre: np.ndarray | None = None, precision: int = 0) -> None:
    """The colour pipeline (see `Color` and csrc/fused.c): x (N, H, W, C) -> out (N, sH, sW, K)."""
    n, h, w = x.shape[:3]
    if pre is not None and (pre.dtype != np.float32 or not pre.flags.c_contiguous):
        raise ValueError("precomputed planes must be C-contiguous float32")
    _check(load().edgesr_color_p(ctypes.byref(buffer(x, True)), ctypes.byref(buffer(out, True)), n, h, w,
                                 scale, int(border), ctypes.byref(model) if model else None,
                                 ctypes.byref(chroma) if chroma else None, ctypes.byref(spec),
                                 None if pre is None else pre.ctypes.data, threads, precision))


def read_planes(x: np.ndarray, spec: Color, count: int) -> np.ndarray:
    """The ``count`` planes of kind 2 of ``spec`` read from x (N, H, W, C): (N, count, H, W) float32."""
    n, h, w = x.shape[:3]
    out = np.empty((n, count, h, w), np.float32)
    _check(load().edgesr_read_planes(ctypes.byref(buffer(x, True)), n, h, w, ctypes.byref(spec),
                                     out.ctypes.data))
    return out
