"""The fused CPU backend: one-layer models (eSR-MAX/TM/TR, Bicubic) through the C kernel.

The reference forward writes the F*s*s*C filter responses of the whole image to memory, shuffles
them and reduces them in several passes (eSR-TM_s2_K7_C16 at Full-HD: 265 MB of responses).
The kernel computes them tile by tile (32 LR pixels x one phase group) in registers and L1 and
reduces them there, so its speed is set by the multiply-adds (measured ~90% of this machine's
sgemm rate for eSR-TM_s2_K7_C16, see benchmarks/speed_table.py). Bicubic goes through a
separable path (s*(4+s*4) instead of s*s*25 multiply-adds per LR pixel).

Measured alternatives (single thread, eSR-TM_s2_K7_C16, 960x540 input): torch reference 917 ms,
the same forward over 32-row bands (halo K//2) 580 ms: the softmax passes, not the memory,
dominate torch's time, so a tiled-torch backend was not worth keeping.

Input (N, 1, H, W) float32 in the model's 0..1 scale; output (N, 1, sH, sW) float32, unclipped,
equal to ``model(lr)`` (zero padding at the borders) within float rounding (~1e-6 relative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgesr.engine import native
from edgesr.engine.torch_backend import resolve_device, resolve_dtype
from edgesr.errors import EdgesrError
from edgesr.models import ModelSpec, family_of


@dataclass(frozen=True)
class FusedPlan:
    """What the kernel needs: (F*s*s*C, KH, KW) weights, zero padding before the image, and
    for separable models (Bicubic) the (s, KH) vertical and (s, KW) horizontal phase filters."""

    scale: int
    channels: int
    mode: int
    weight: np.ndarray
    pad: tuple[int, int]
    vert: np.ndarray | None = None
    horz: np.ndarray | None = None

    def native_filter(self) -> native.Filter:
        """The kernel's view of this plan (separable when vert/horz are known); the plan keeps the
        arrays alive."""
        if self.vert is not None:
            return native.filter_struct(None, self.vert, self.horz, (self.vert.shape[1], self.horz.shape[1]),
                                        self.pad, 1, 0)
        return native.filter_struct(self.weight, None, None, self.weight.shape[1:], self.pad,
                                    self.channels, self.mode)


def supports(model: nn.Module) -> bool:
    """True for the families the kernel runs (those with a `Family.kernel_mode`: eSR-MAX/TM/TR
    and Bicubic), scales 2..4."""
    spec = getattr(model, "spec", None)
    return isinstance(spec, ModelSpec) and family_of(spec).kernel_mode is not None and 2 <= spec.scale <= 4


def make_plan(model: nn.Module) -> FusedPlan:
    """Extract the kernel's weights from a one-layer model (or Bicubic)."""
    if not supports(model):
        name = getattr(getattr(model, "spec", None), "id", type(model).__name__)
        raise EdgesrError(f"{name}: the fused backend runs eSR-MAX/TM/TR and Bicubic at scales 2..4;"
                          " use backend='torch'")
    spec: ModelSpec = model.spec
    family = family_of(spec)
    weight, pad = family.kernel_weights(model)
    vert, horz = separate(weight, spec.scale) if family.kernel_separable else (None, None)
    return FusedPlan(spec.scale, spec.params.get("C", 1), family.kernel_mode, weight, pad, vert, horz)


def separate(weight: np.ndarray, scale: int, tolerance: float = 1e-6):  # noqa: ANN201
    """(s*s, KH, KW) phase filters -> (vert (s, KH), horz (s, KW)) when every filter of phase
    (r, q) is vert[r] x horz[q] within ``tolerance`` of the largest tap; else (None, None)."""
    _, kh, kw = weight.shape
    matrix = weight.reshape(scale, scale, kh, kw).transpose(0, 2, 1, 3).reshape(scale * kh, scale * kw)
    matrix = matrix.astype(np.float64)
    peak = np.abs(matrix).max()
    if peak == 0:
        return None, None
    u, sigma, vt = np.linalg.svd(matrix)
    vert = u[:, 0] * np.sqrt(sigma[0])
    horz = vt[0] * np.sqrt(sigma[0])
    if np.abs(np.outer(vert, horz) - matrix).max() > tolerance * peak:
        return None, None
    return (np.ascontiguousarray(vert.reshape(scale, kh), np.float32),
            np.ascontiguousarray(horz.reshape(scale, kw), np.float32))


class FusedBackend:
    """Runs a one-layer model on CPU through the compiled fused kernel (float32).

    ``threads`` defaults to ``torch.get_num_threads()`` at each call, so ``torch.set_num_threads``
    (and ``edgesr bench --threads``) governs both engines alike. ``precision`` (opt-in) runs the
    model's convolution in "bf16" (AVX512-BF16), "int8" (AVX512-VNNI, weights quantized per
    output channel, inputs on 256 levels of 0..1) or "fp16" (ARMv8.2-A); the reduction and
    everything around it stay fp32 (README, "Reduced precision", for what each costs in PSNR).
    """

    name = "fused"

    def __init__(self, model: nn.Module, device: str | torch.device | None = "cpu",
                 dtype: str | torch.dtype = "float32", threads: int | None = None,
                 precision: str = "fp32") -> None:
        if resolve_device(device).type != "cpu":
            raise EdgesrError("the fused backend runs on the CPU; use backend='torch' for CUDA")
        if resolve_dtype(dtype) != torch.float32:
            raise EdgesrError(f"the fused backend computes in float32, not {dtype}")
        self.plan = make_plan(model)
        if native.load() is None:
            raise EdgesrError(f"fused backend unavailable: {native.unavailable_reason()}")
        self.precision = check_precision(precision, self.plan)
        self.scale = self.plan.scale
        self.threads = threads
        self.filter = self.plan.native_filter()  # also what the colour pipeline runs

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 4 or lr.shape[1] != 1:
            raise ValueError(f"fused backend expects (N, 1, H, W), got {tuple(lr.shape)}")
        x = lr.detach().to("cpu", torch.float32).contiguous().numpy()[:, 0]
        return torch.from_numpy(self.run(x))[:, None]

    def run(self, x: np.ndarray, out_dtype: type = np.float32,
            in_affine: tuple[float, float] = (1.0, 0.0),
            out_affine: tuple[float, float] = (1.0, 0.0), clamp: tuple[float, float] | None = None,
            border: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """(N, H, W) float32, uint8 or uint16 planes -> (N, sH, sW) float32, uint8 or uint16.

        The model sees ``x * a + b`` for ``in_affine = (a, b)`` and its output o leaves as
        ``o * c + d`` for ``out_affine = (c, d)``; integer outputs are clamped to ``clamp``
        (default the dtype's range) and rounded half to even. E.g. uint8 gray in/out:
        ``in_affine=(1/255, 0), out_affine=(255, 0)``. ``border=True`` reads the nearest edge
        pixel outside the image instead of the model's zero padding. Rows of ``x`` and ``out``
        may be strided (video planes are read and written in place).
        """
        if x.ndim != 3 or x.dtype not in native.TYPES:
            raise ValueError(f"expected (N, H, W) float32, uint8 or uint16 planes, got {x.shape} {x.dtype}")
        if x.strides[2] != x.itemsize:
            x = np.ascontiguousarray(x)
        n, h, w = x.shape
        s = self.scale
        if out is None:
            out = np.empty((n, h * s, w * s), dtype=out_dtype)
        if out.dtype not in native.TYPES or out.shape != (n, h * s, w * s):
            raise ValueError(f"output must be ({n}, {h * s}, {w * s}) float32/uint8/uint16, got"
                             f" {out.shape} {out.dtype}")
        if out.size == 0:
            return out
        if clamp is None:
            clamp = (0.0, float(np.iinfo(out.dtype).max)) if out.dtype != np.float32 else (0.0, 0.0)
        threads = self.threads or torch.get_num_threads()
        native.plane(x, out, self.filter, s, border, threads, in_affine, (*out_affine, *clamp),
                     native.PRECISIONS[self.precision])
        return out


def check_precision(precision: str, plan: FusedPlan) -> str:
    """``precision`` when the kernel runs it for ``plan`` on this CPU, else a clear error."""
    if precision not in native.PRECISIONS:
        raise EdgesrError(f"unknown precision {precision!r}; choose {', '.join(native.PRECISIONS)}")
    if precision == "fp32":
        return precision
    if plan.vert is not None:  # separable (Bicubic)
        raise EdgesrError("Bicubic runs a separable fp32 filter bound by memory traffic; reduced precision"
                          " is for eSR-MAX/TM/TR")
    if precision not in native.precisions():
        raise EdgesrError(f"precision {precision!r} needs {native.PRECISION_NEEDS[precision]}, which this"
                          f" CPU (or the kernel's build) lacks; it runs {', '.join(native.precisions())}")
    return precision


def self_check(backend: FusedBackend, model: nn.Module) -> bool:
    """True when the kernel matches the torch forward on a small random input (guards against a
    miscompiled kernel before `auto_backend` trusts it)."""
    generator = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 1, 9, 37, generator=generator)
    with torch.inference_mode():
        reference = model.float()(lr)
    got = backend(lr)
    return bool(torch.allclose(got, reference, rtol=1e-5, atol=1e-5 * float(reference.abs().max())))


def auto_backend(model: nn.Module, device: str | torch.device | None = "cpu",
                 dtype: str | torch.dtype = "float32") -> str:
    """Name of the fastest correct backend for this model and device: ``fused`` for one-layer
    models in float32 on CPU when the kernel compiles and passes `self_check`, else ``torch``
    (on CUDA the torch forward in the requested dtype)."""
    if resolve_device(device).type != "cpu" or resolve_dtype(dtype) != torch.float32:
        return "torch"
    if not supports(model) or native.load() is None:
        return "torch"
    return "fused" if self_check(FusedBackend(model), model) else "torch"
