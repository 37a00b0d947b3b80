"""Seam-free tiling: upscale overlapping windows and stitch them, bit-identical to one whole run.

Every family has a finite receptive field: the output pixels of LR pixel p depend only on LR
pixels p - c .. p + c, with c = `edgesr.models.context_pixels(spec)`. A window that carries c
real pixels beyond the part of the output it writes (its *core*) therefore computes that core as
a whole-image run does; windows touching the image edge keep the edge, so both border modes
(replicate padding, the model's own zero padding) see the same edge as the whole image.

Equal in exact arithmetic is not yet equal bit for bit: PyTorch's CPU kernels round differently
depending on where a pixel sits in the tensor. Four rules, measured on torch 2.13 (AVX-512,
oneDNN 3.12), make every window round exactly as the whole image does:

* windows start at multiples of `ALIGN` (64) pixels, so the scalar tail of each vectorised loop
  (the last ``numel % 64`` elements) falls on the same pixels as in the whole image or in the
  discarded margin;
* each window has more than `MIN_WINDOW_PIXELS` pixels: below 20480 input elements torch runs
  3x3 convolutions with its native kernel instead of oneDNN, which rounds differently;
* each window runs with one intra-op thread (windows run in parallel instead), because the split
  of a tensor between threads also moves vector tails;
* FSRCNN is cut in full-width strips only (`needs_full_width`): oneDNN's transposed convolution
  rounds differently for every input width (not for different heights; `Family.full_width_tiles`).

Tiled output is therefore bit-identical to
  a whole-image run made with ``torch.set_num_threads(1)``, and never depends on the tile size or
  the number of workers; a multi-threaded whole-image run differs from it by float rounding only
  (<= 2e-7 on 0..1 outputs).

Memory: only windows are live at once, so model intermediates are bounded by
``workers * window_bytes`` (see `window_bytes`) whatever the image size (for FSRCNN's
full-width strips, whatever the image height). Measured: a 4096 x 4096 gray x2 run with a
64 MiB budget grows the process by ~130 MB (input 16 MiB + output 64 MiB + windows), where the
whole-image model activations alone would take 4.4 GB (tests/test_tiling.py).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from edgesr.models import ModelSpec, context_pixels, family_of

ALIGN = 64
MIN_WINDOW_PIXELS = 20480
MIN_TILE = 192
#: Default memory budget for one Upscaler call's working set (model and colour intermediates).
DEFAULT_BUDGET = int(os.environ.get("EDGESR_MEMORY_BUDGET", str(2 * 1024**3)))


@dataclass(frozen=True)
class Span:
    """One window along an axis: reads ``[start, stop)``, writes ``[core_start, core_stop)``."""

    start: int
    stop: int
    core_start: int
    core_stop: int


@dataclass(frozen=True)
class Tile:
    """A 2-D window: the product of a row span and a column span (LR pixel coordinates)."""

    rows: Span
    cols: Span


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_spans(length: int, margin: int, step: int) -> list[Span]:
    """Split ``[0, length)`` into windows of ``step`` core pixels plus ``margin`` on inner sides.

    Window starts are multiples of `ALIGN`; every window is between ``step + m`` and
    ``step + m + ALIGN - 1`` long, m = ``margin`` doubled and rounded up to `ALIGN` (so at least
    ``margin`` real pixels lie beyond every inner core edge). A length that fits one such window
    gives one span: the whole axis.
    """
    if step % ALIGN or step <= 0:
        raise ValueError(f"step must be a positive multiple of {ALIGN}, got {step}")
    m = max(ALIGN, _round_up(2 * margin, ALIGN))
    if length < step + m + ALIGN:
        return [Span(0, length, 0, length)]
    last_start = (length - step - m) // ALIGN * ALIGN
    count = -(-last_start // step) + 1  # smallest n with (n - 1) * step >= last_start
    spans = []
    for i in range(count - 1):
        start = i * step
        spans.append(Span(start, start + step + m, start + margin if i else 0, start + step + margin))
    spans.append(Span(last_start, length, (count - 1) * step + margin, length))
    return spans


def needs_full_width(spec: ModelSpec | str) -> bool:
    """Whether the family must be tiled in full-width strips to stay bit-identical (FSRCNN: its
    stride-s transposed convolution in oneDNN rounds depending on the input width)."""
    return family_of(spec).full_width_tiles


def plan_tiles(height: int, width: int, margin: int, tile: int, strips: bool = False) -> list[Tile]:
    """Windows covering a ``height`` x ``width`` LR image; cores partition it exactly.

    ``tile`` (core pixels per side) is rounded up to a multiple of `ALIGN`, at least `MIN_TILE`
    (strips: `ALIGN`), and grown along an axis while a window would have `MIN_WINDOW_PIXELS`
    pixels or fewer. ``strips=True`` splits rows only (windows span the whole width).
    """
    step_y = step_x = max(ALIGN if strips else MIN_TILE, _round_up(max(int(tile), 1), ALIGN))
    while True:
        rows = plan_spans(height, margin, step_y)
        cols = [Span(0, width, 0, width)] if strips else plan_spans(width, margin, step_x)
        smallest = min(r.stop - r.start for r in rows) * min(c.stop - c.start for c in cols)
        if smallest > MIN_WINDOW_PIXELS or (len(rows) == 1 and len(cols) == 1):
            return [Tile(r, c) for r in rows for c in cols]
        # Grow the axis that is split (a thin image has one window across its short side).
        if len(cols) > 1 and (len(rows) == 1 or step_x <= step_y):
            step_x += ALIGN
        else:
            step_y += ALIGN


_window = threading.local()


def _single_thread() -> None:
    torch.set_num_threads(1)
    _window.inside = True


def in_window() -> bool:
    """True inside a window's worker thread (where nothing should be tiled again)."""
    return getattr(_window, "inside", False)


def run_windows(job: Callable[[Tile], None], tiles: list[Tile], workers: int = 1) -> None:
    """Run ``job`` on every tile in ``workers`` threads, each with one intra-op thread.

    The caller's own torch thread setting is left as it was.
    """
    previous = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), initializer=_single_thread) as pool:
            for future in [pool.submit(job, tile) for tile in tiles]:
                future.result()
    finally:
        torch.set_num_threads(previous)  # the pool's setting must not leak to new threads


def tiled_apply(fn: Callable, x, scale: int, margin: int, tile: int, axes: tuple[int, int],  # noqa: ANN001
                workers: int = 1, strips: bool = False):  # noqa: ANN201
    """``fn(x)`` computed window by window; ``x`` is a torch tensor or a numpy array.

    Args:
        fn: maps an array whose ``axes`` are (h, w) to one whose same axes are (s*h, s*w), every
            other axis unchanged; its output at pixel p may depend on inputs within ``margin``
            LR pixels of p only.
        axes: the (row, column) axes of ``x``: (-2, -1) for (N, 1, H, W) planes, (0, 1) for
            (H, W[, C]) images.
        strips: full-width windows only (see `needs_full_width`).
    Returns:
        the stitched output, same type as ``fn``'s, bit-identical to ``fn(x)`` run with one
        intra-op thread when ``fn`` is a PyTorch CPU model pipeline (see the module notes).
    """
    ndim = x.ndim
    ay, ax = (a % ndim for a in axes)
    height, width = x.shape[ay], x.shape[ax]
    tiles = plan_tiles(height, width, margin, tile, strips)
    holder: dict[str, object] = {}

    def index(rows: slice, cols: slice) -> tuple:
        key = [slice(None)] * ndim
        key[ay], key[ax] = rows, cols
        return tuple(key)

    def allocate(sample) -> object:  # noqa: ANN001
        shape = list(sample.shape)
        shape[ay], shape[ax] = scale * height, scale * width
        if isinstance(sample, torch.Tensor):
            return torch.empty(shape, dtype=sample.dtype, device=sample.device)
        return np.empty(shape, dtype=sample.dtype)

    def job(t: Tile) -> None:
        window = x[index(slice(t.rows.start, t.rows.stop), slice(t.cols.start, t.cols.stop))]
        result = fn(window.contiguous() if isinstance(window, torch.Tensor) else np.ascontiguousarray(window))
        if "out" not in holder:
            holder.setdefault("out", allocate(result))  # setdefault is atomic under the GIL
        r, c = t.rows, t.cols
        src = index(slice(scale * (r.core_start - r.start), scale * (r.core_stop - r.start)),
                    slice(scale * (c.core_start - c.start), scale * (c.core_stop - c.start)))
        dst = index(slice(scale * r.core_start, scale * r.core_stop),
                    slice(scale * c.core_start, scale * c.core_stop))
        holder["out"][dst] = result[src]

    # The first window runs alone so that the output is allocated once, from its dtype.
    run_windows(job, tiles[:1], 1)
    run_windows(job, tiles[1:], workers)
    return holder["out"]


def model_floats_per_pixel(spec: ModelSpec | str) -> int:
    """float32 values live at the peak of one forward pass, per LR input pixel (an upper bound;
    each family states its own, `edgesr.models.Family.floats_per_pixel`)."""
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    return family_of(spec).floats_per_pixel(spec)


def window_bytes(spec: ModelSpec | str, pixels: int, planes: int = 1, image: bool = False) -> int:
    """Bytes one window of ``pixels`` LR pixels needs while it runs.

    ``image=True`` adds `Upscaler.upscale`'s colour pipeline (float64 RGB/YCbCr copies at LR and
    HR size, bicubic chroma): about 80 + 80*s^2 bytes per LR pixel.
    """
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    model = 4 * model_floats_per_pixel(spec) * planes
    colour = (80 + 80 * spec.scale**2) if image else 0
    return pixels * (model + colour)


def choose_tile(spec: ModelSpec | str, height: int, width: int, budget: int, planes: int = 1,
                image: bool = False, workers: int = 1) -> int | None:
    """Core tile size that keeps ``workers`` windows within ``budget`` bytes, or None if the
    whole image already fits. For full-width strips (`needs_full_width`) it is the strip height,
    at least `ALIGN` rows: a strip may then exceed the budget on very wide images."""
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    margin = context_pixels(spec)
    if window_bytes(spec, (height + 2 * margin) * (width + 2 * margin), planes, image) <= budget:
        return None
    per_pixel = window_bytes(spec, 1, planes, image) * max(1, workers)
    m = max(ALIGN, _round_up(2 * margin, ALIGN))
    if needs_full_width(spec):
        rows = int(budget / (per_pixel * (width + 2 * margin)))
        return max(ALIGN, (rows - m - ALIGN) // ALIGN * ALIGN)
    side = int(math.sqrt(budget / per_pixel))
    return max(MIN_TILE, (side - m - ALIGN) // ALIGN * ALIGN)
