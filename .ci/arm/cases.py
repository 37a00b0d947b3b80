"""Writes the ARM test cases: inputs, kernel arguments and the outputs the host expects.

Why on the host: the expected outputs come from the torch forward (the reference definition of
every family) and, for the colour entry point, from the NumPy/torch colour path, so the ARM
build of csrc/fused.c is checked against the model, not against another build of itself. Run with
EDGESR_NATIVE=0 so no native kernel takes part in making the expectations.

Usage: EDGESR_NATIVE=0 python .ci/arm/cases.py OUT.bin [--precision fp16]
(a reduced precision applies to the one-layer models' conv; Bicubic cases stay fp32)

File format (little endian; the driver driver.c reads it): "ESRC" then a count, then per case
  name (i32 length + bytes), i32 entry (0 plane, 1 colour), n h w s border threads row_pad precision,
  model filter, [colour: chroma filter, colour spec], [plane: f32 in_coef in_offset omap[4]],
  input (i32 type channels + data), i32 output type, expected output (i32 type channels + data),
  f32 tolerance, f32 the largest fraction of outputs that may differ from the expected at all.
Integer plane outputs are expected as the unrounded float reference (tolerance 0.5 + float error),
so an output one level off is caught; colour outputs are the reference path's rounded integers
(within one level, and exactly equal for all but a small fraction).
A filter is i32 has_weight kh kw pad_top pad_left c mode, then the weight (Cout*kh*kw f32) or
vert (s*kh) and horz (s*kw).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

if os.environ.get("EDGESR_NATIVE") != "0":
    sys.exit("run with EDGESR_NATIVE=0: the expected outputs must not come from a native kernel")

from edgesr.engine.color import MODEL, plan_color  # noqa: E402
from edgesr.engine.fused import FusedPlan, make_plan  # noqa: E402
from edgesr.engine.native import PRECISIONS  # noqa: E402
from edgesr.engine.upscaler import Upscaler  # noqa: E402
from edgesr.models import context_pixels, create_model  # noqa: E402

TYPE_CODE = {np.dtype(np.float32): 0, np.dtype(np.uint8): 1, np.dtype(np.uint16): 2}


def i32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


def f32(values) -> bytes:  # noqa: ANN001
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def filter_bytes(plan: FusedPlan) -> bytes:
    if plan.vert is not None:
        kh, kw = plan.vert.shape[1], plan.horz.shape[1]
        return i32(0, kh, kw, *plan.pad, 1, 0) + f32(plan.vert) + f32(plan.horz)
    kh, kw = plan.weight.shape[1:]
    return i32(1, kh, kw, *plan.pad, plan.channels, plan.mode) + f32(plan.weight)


def array_bytes(array: np.ndarray, channels: int) -> bytes:
    return i32(TYPE_CODE[array.dtype], channels) + np.ascontiguousarray(array).astype(
        array.dtype.newbyteorder("<")).tobytes()


def random_model(model_id: str, seed: int, precision: int = 0) -> torch.nn.Module:
    """A model with random filters (Bicubic keeps its fixed ones): keys far from any symmetry.

    For reduced precision, trained-like filters instead (the centre-tap start plus small noise):
    N(0, 0.5) filters give keys of +-50, whose softmax turns fp16's 2^-11 steps into outputs
    many levels off, which no trained model has."""
    model = create_model(model_id)
    if hasattr(model, "filter"):
        torch.manual_seed(seed)
        with torch.no_grad():
            if precision:
                model.filter.weight.add_(torch.randn_like(model.filter.weight) * 0.1)
            else:
                model.filter.weight.normal_(0.0, 0.5)
    return model.eval()


def smooth_image(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    """Gradients with noise: rounding, clipping and flat areas all occur."""
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    y, x = np.mgrid[0:shape[1], 0:shape[2]] / max(shape[1:3])
    channels = shape[3] if len(shape) == 4 else 1
    base = np.stack([0.5 + 0.45 * np.sin(6 * x + 4 * y + k) for k in range(channels)], axis=-1)
    base = np.broadcast_to(base, (shape[0], *base.shape))
    noisy = np.clip(base + rng.normal(0, 0.08, base.shape), 0, 1) * peak
    image = np.rint(noisy).astype(dtype)
    return image if len(shape) == 4 else image[..., 0]


def reference_plane(model: torch.nn.Module, x: np.ndarray, border: bool) -> np.ndarray:
    """The torch forward on (N, H, W) model-scale float planes; border: replicate the edges."""
    planes = torch.from_numpy(x.astype(np.float32))[:, None]
    c = context_pixels(model.spec) if border else 0
    if c:
        planes = F.pad(planes, (c, c, c, c), mode="replicate")
    with torch.inference_mode():
        out = model(planes)[:, 0].double().numpy()
    e = c * model.spec.scale
    return out[:, e:out.shape[1] - e, e:out.shape[2] - e] if e else out


@dataclass(frozen=True)
class PlaneCase:
    model_id: str
    n: int
    h: int
    w: int
    in_type: type
    out_type: type
    border: bool = False
    threads: int = 1
    row_pad: int = 0
    luma: bool = False  # uint8 input read as studio-range luma: (x - 16) / 219

    def encode(self, seed: int, precision: int) -> bytes:
        model = random_model(self.model_id, seed, precision)
        s = model.spec.scale
        precision = 0 if model.spec.family == "Bicubic" else precision
        if self.in_type is np.float32:
            x = np.random.default_rng(seed).random((self.n, self.h, self.w), np.float32)
            affine = (1.0, 0.0)
        else:
            x = smooth_image((self.n, self.h, self.w), self.in_type, seed)
            peak = float(np.iinfo(self.in_type).max)
            affine = (1 / 219, -16 / 219) if self.luma else (1 / peak, 0.0)
        a, b = np.float32(affine[0]), np.float32(affine[1])
        o = reference_plane(model, x.astype(np.float32) * a + b, self.border)
        relative = 4e-3 if precision else 1e-5  # fp16: a few 2^-11 steps of the largest response
        if self.out_type is np.float32:
            omap = (1.0, 0.0, 0.0, 0.0)
            expected = o.astype(np.float32)
            tolerance = 10 * relative * max(1.0, float(np.abs(o).max()))
        else:
            peak = float(np.iinfo(self.out_type).max)
            omap = (peak, 0.0, 0.0, peak)
            expected = np.clip(o * peak, 0, peak).astype(np.float32)  # rounding is the kernel's
            tolerance = 0.5 + relative * peak * max(1.0, float(np.abs(o).max()))
        name = (f"plane {self.model_id} n{self.n} {self.h}x{self.w} {np.dtype(self.in_type).name}->"
                f"{np.dtype(self.out_type).name} border={int(self.border)} threads={self.threads}"
                f"{' rowpad' if self.row_pad else ''}{' luma' if self.luma else ''}")
        return (i32(len(name)) + name.encode() + i32(0, self.n, self.h, self.w, s, int(self.border),
                                                      self.threads, self.row_pad, precision)
                + filter_bytes(make_plan(model)) + f32([a, b, *omap])
                + array_bytes(x, 1) + i32(TYPE_CODE[np.dtype(self.out_type)]) + array_bytes(expected, 1)
                + f32([tolerance, 1.0]))


@dataclass(frozen=True)
class ColorCase:
    model_id: str
    h: int
    w: int
    channels: int
    dtype: type
    color: str = "ycbcr"
    order: str = "rgb"
    border: str = "replicate"
    threads: int = 1

    def encode(self, seed: int, precision: int) -> bytes:
        model = random_model(self.model_id, seed, precision)
        s = model.spec.scale
        precision = 0 if model.spec.family == "Bicubic" else precision
        image = smooth_image((1, self.h, self.w, self.channels), self.dtype, seed)[0]
        upscaler = Upscaler(model, color=self.color, border=self.border, channels=self.order, backend="torch")
        expected = upscaler.upscale(image)  # EDGESR_NATIVE=0: NumPy colour maths, torch forward
        peak = float(np.iinfo(self.dtype).max)
        spec = plan_color(self.channels, peak, self.color, self.order, MODEL).spec
        chroma = make_plan(create_model(f"Bicubic_s{s}"))
        color = (i32(spec.planes, spec.outs, *spec.kind) + f32([v for row in spec.coef for v in row])
                 + f32(list(spec.offset)) + f32([v for row in spec.mat for v in row])
                 + f32(list(spec.ooff)) + f32([spec.peak]))
        tolerance, mismatches = (1.0, 0.02) if not precision else (4e-3 * peak + 1, 1.0)
        name = (f"colour {self.model_id} {self.h}x{self.w}x{self.channels} {np.dtype(self.dtype).name}"
                f" {self.color} {self.order} border={self.border} threads={self.threads}")
        return (i32(len(name)) + name.encode() + i32(1, 1, self.h, self.w, s, int(self.border == "replicate"),
                                                      self.threads, 0, precision)
                + filter_bytes(make_plan(model)) + filter_bytes(chroma) + color
                + array_bytes(image, self.channels) + i32(TYPE_CODE[expected.dtype])
                + array_bytes(expected, self.channels) + f32([tolerance, mismatches]))


def cases() -> Iterator[PlaneCase | ColorCase]:
    """Every mode (MAX/TM/TR and the separable bicubic) at scales 2-4, uint8 and float in and out,
    odd sizes, zero and replicated borders, strided rows, 1-4 threads, and the colour entry point."""
    for s in (2, 3, 4):
        for family, k, c in (("eSR-MAX", 3, 2), ("eSR-TM", 5, 4), ("eSR-TR", 7, 3)):
            mid = f"{family}_s{s}_K{k}_C{c}"
            yield PlaneCase(mid, 2, 37, 45, np.float32, np.float32)
            yield PlaneCase(mid, 1, 29, 53, np.uint8, np.uint8, border=True, luma=True)
            yield PlaneCase(mid, 1, 19, 23, np.uint8, np.float32, row_pad=5)
        yield PlaneCase(f"Bicubic_s{s}", 2, 31, 39, np.float32, np.float32)
        yield PlaneCase(f"Bicubic_s{s}", 1, 33, 41, np.uint8, np.uint8, border=True)
        yield PlaneCase(f"Bicubic_s{s}", 1, 17, 29, np.uint16, np.uint16, row_pad=3)
    # Threads: the kernel splits work only above ~4e6 multiply-adds and two strips per thread.
    yield PlaneCase("eSR-TM_s2_K7_C16", 3, 71, 97, np.uint8, np.uint8, border=True, threads=3)
    yield PlaneCase("eSR-TR_s3_K5_C8", 2, 65, 77, np.float32, np.float32, threads=4)
    yield PlaneCase("eSR-MAX_s4_K7_C8", 2, 49, 61, np.uint8, np.float32, threads=2)
    yield PlaneCase("eSR-MAX_s2_K3_C1", 1, 1, 1, np.uint8, np.uint8)  # one pixel
    for s in (2, 3, 4):
        yield ColorCase(f"eSR-TM_s{s}_K5_C4", 23, 37, 3, np.uint8)
        yield ColorCase(f"eSR-MAX_s{s}_K3_C2", 21, 19, 4, np.uint16, border="zero")
    yield ColorCase("eSR-TR_s2_K7_C4", 29, 31, 3, np.uint8, color="rgb", order="bgr")
    yield ColorCase("Bicubic_s3", 17, 25, 1, np.uint8)
    yield ColorCase("eSR-TM_s2_K7_C16", 67, 83, 3, np.uint8, threads=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    blobs = [case.encode(seed, PRECISIONS[args.precision]) for seed, case in enumerate(cases())]
    with open(args.out, "wb") as handle:
        handle.write(b"ESRC" + i32(len(blobs)) + b"".join(blobs))
    print(f"{args.out}: {len(blobs)} cases ({args.precision})")


if __name__ == "__main__":
    main()
