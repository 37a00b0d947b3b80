"""The fused C kernel (csrc/fused.c): compiled on first use with the system C compiler, cached.

Why compile at run time: the kernel is ~500 lines of plain C (no Python or torch headers), so a
compiler builds it in about a second, and ``-march=native`` tunes it to the machine that runs it
(AVX-512 / AVX2 / NEON) with no binary wheels to ship. The shared library is cached under
``$EDGESR_CACHE`` (default ``~/.cache/edgesr``) keyed by the source, the compiler and the CPU.
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
import subprocess
import tempfile
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np

SOURCE = "fused.c"
FLAGS = ("-O3", "-fPIC", "-shared", "-pthread", "-fno-math-errno", "-std=gnu11")
_REASON: list[str] = []

_F, _I, _P = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
_IO = [_P, _I, _F, _F, _P, _I, _F, _F, _I, _I, _I]  # in, in_u8, scale, offset, out, ..., n, h, w


def cache_dir() -> Path:
    """Where compiled kernels live: $EDGESR_CACHE, else $XDG_CACHE_HOME/edgesr, else ~/.cache/edgesr."""
    root = os.environ.get("EDGESR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "edgesr")
    return Path(root) / "native"


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


def _build(compiler: str, source: Path, target: Path) -> str | None:
    """Compile ``source`` into ``target`` (atomically); returns an error text or None."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".fused.", suffix=".so", dir=target.parent)
    os.close(fd)
    error = "no compile attempted"
    try:
        for arch in (["-march=native"], []):  # some compilers/targets lack -march=native
            result = subprocess.run([compiler, *FLAGS, *arch, "-o", tmp, str(source), "-lm"],
                                    capture_output=True, text=True, timeout=120)
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
    """The compiled kernel, building it on first use; ``None`` when it cannot be had."""
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
    lib.edgesr_fused.restype = _I
    lib.edgesr_fused.argtypes = [*_IO, _P, _I, _I, _I, _I, _I, _I, _I, _I]
    lib.edgesr_separable.restype = _I
    lib.edgesr_separable.argtypes = [*_IO, _P, _P, _I, _I, _I, _I, _I, _I]
    return lib


def unavailable_reason() -> str | None:
    """Why `load` returned None (after it did), else None."""
    return _REASON[-1] if _REASON else None


def _check(code: int) -> None:
    if code == 1:
        raise ValueError("fused kernel: invalid arguments")
    if code != 0:
        raise MemoryError("fused kernel: out of memory")


def _io(x: np.ndarray, out: np.ndarray, in_affine: tuple[float, float],
        out_affine: tuple[float, float]) -> list:
    n, h, w = x.shape
    return [x.ctypes.data, int(x.dtype == np.uint8), in_affine[0], in_affine[1], out.ctypes.data,
            int(out.dtype == np.uint8), out_affine[0], out_affine[1], n, h, w]


def fused(x: np.ndarray, out: np.ndarray, weight: np.ndarray, pad: tuple[int, int], scale: int,
          channels: int, mode: int, threads: int, in_affine: tuple[float, float] = (1.0, 0.0),
          out_affine: tuple[float, float] = (1.0, 0.0)) -> None:
    """One-layer model: x (N, H, W) float32/uint8 -> out (N, sH, sW) float32/uint8, in place.

    weight (F*s*s*C, KH, KW) float32 in the model's channel order; mode 0 max, 1 TM, 2 TR;
    pad = zero rows/columns before the image (top, left). Values enter as x*a+b and leave as
    o*a+b (uint8 output clamped to 0..255 and rounded half to even).
    """
    lib = load()
    _check(lib.edgesr_fused(*_io(x, out, in_affine, out_affine), weight.ctypes.data,
                            weight.shape[1], weight.shape[2], pad[0], pad[1], scale, channels, mode,
                            threads))


def separable(x: np.ndarray, out: np.ndarray, vert: np.ndarray, horz: np.ndarray,
              pad: tuple[int, int], scale: int, threads: int,
              in_affine: tuple[float, float] = (1.0, 0.0),
              out_affine: tuple[float, float] = (1.0, 0.0)) -> None:
    """Phase filters vert[r] x horz[q] ((s, KH) and (s, KW) float32), otherwise as `fused`."""
    lib = load()
    _check(lib.edgesr_separable(*_io(x, out, in_affine, out_affine), vert.ctypes.data,
                                horz.ctypes.data, vert.shape[1], horz.shape[1], pad[0], pad[1],
                                scale, threads))
