"""The GPU backend: one-layer models (eSR-MAX/TM/TR, Bicubic) through fused Triton kernels.

``Upscaler(model, device="cuda", backend="triton")`` (or ``backend="auto"`` on CUDA when Triton
imports and passes `self_check`) runs the model as one kernel per plane (`triton_kernels`), in
float32, float16 or bfloat16 (float32 sums either way). A uint8/uint16 RGB(A) image goes up to
the device once and comes back once: BT.601 Y' through the model, Cb/Cr and alpha through the
bicubic with clamped edges, the mix back to RGB rounded half to even: the conventions of the CPU
colour pipeline (`edgesr.engine.color`, whose `plan_color` this reuses).

Without a GPU the same kernels run on CPU tensors under Triton's interpreter: set
``TRITON_INTERPRET=1`` before Python imports edgesr's kernels (the test suite does); a CPU
device without it is a clear error, never a silent fallback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import nn

from edgesr.engine.color import CHROMA, MODEL, plan_color
from edgesr.engine.fused import FusedPlan, make_plan, supports
from edgesr.engine.torch_backend import resolve_device, resolve_dtype
from edgesr.errors import EdgesrError
from edgesr.models import create_model

#: LR tile of one program (rows, columns) and its warps: 128 pixels, the M of each tensor-core
#: product. A first choice, not yet tuned on a GPU: ``EDGESR_TRITON_TILE=16x16:8`` overrides it
#: (benchmarks/gpu_check.py --tiles sweeps it).
TILE, WARPS = (8, 16), 4


def tile_setting(text: str | None = None) -> tuple[tuple[int, int], int]:
    """``"RxC"`` or ``"RxC:W"`` (rows x columns of LR pixels, powers of two; W warps) ->
    ((rows, columns), warps); None or empty -> the defaults."""
    text = os.environ.get("EDGESR_TRITON_TILE", "") if text is None else text
    if not text:
        return TILE, WARPS
    try:
        size, _, warps = text.partition(":")
        rows, cols = (int(v) for v in size.lower().split("x"))
        result = (rows, cols), int(warps or WARPS)
    except ValueError:
        raise EdgesrError(f"tile {text!r}: expected RxC or RxC:W, e.g. 8x16:4") from None
    if any(v < 1 or v & (v - 1) for v in (rows, cols, result[1])) or rows * cols < 16:
        raise EdgesrError(f"tile {text!r}: rows, columns and warps must be powers of two, >= 16 pixels")
    return result
#: HR pixels per program of the colour mix.
MIX_BLOCK = 1024
#: Per-pixel products below which the responses are summed without a matrix product: tl.dot
#: needs every side >= 16, which would pad eSR-MAX_s2_K3_C2 (9 taps x 2 channels) 14-fold.
DOT_MIN_WORK = 64
_FACTORS = {0: 1, 1: 2, 2: 3}  # template kinds per reduction mode (fused.MODES)


def unavailable_reason() -> str | None:
    """Why the Triton backend cannot run here, or None when Triton imports."""
    try:
        import triton  # noqa: F401
    except ImportError as error:
        return f"Triton is not installed ({error}); pip install 'edgesr[gpu]'"
    return None


def interpreting() -> bool:
    """True when Triton's interpreter runs the kernels (TRITON_INTERPRET=1 when they loaded)."""
    return type(_kernels().one_layer_kernel).__name__ == "InterpretedFunction"


@cache
def _kernels():  # noqa: ANN202 - the module, imported once Triton is known to be there
    from edgesr.engine import triton_kernels

    return triton_kernels


def _next_pow2(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


@dataclass(frozen=True)
class Packed:
    """A one-layer model as the kernel reads it: weights (F, s*s, KKP, CP) on the device."""

    weight: torch.Tensor
    kh: int
    kw: int
    pad: tuple[int, int]
    scale: int
    channels: int
    mode: int
    use_dot: bool


def pack(plan: FusedPlan, dtype: torch.dtype, device: torch.device) -> Packed:
    """Reorder a `FusedPlan`'s (F*C*s*s, KH, KW) weights (channel (f*C + c)*s*s + phase) into
    the kernel's (F, s*s, taps, channels) layout, zero-padded to powers of two."""
    s, c = plan.scale, plan.channels
    factor = _FACTORS[plan.mode]
    _, kh, kw = plan.weight.shape
    taps = kh * kw
    w = plan.weight.reshape(factor, c, s * s, taps).transpose(0, 2, 3, 1)
    use_dot = _next_pow2(taps) * _next_pow2(c) > DOT_MIN_WORK
    kkp = max(16, _next_pow2(taps)) if use_dot else _next_pow2(taps)
    cp = max(16, _next_pow2(c)) if use_dot else _next_pow2(c)
    padded = np.zeros((factor, s * s, kkp, cp), np.float32)
    padded[:, :, :taps, :c] = w
    weight = torch.from_numpy(padded).to(device=device, dtype=dtype)
    return Packed(weight, kh, kw, plan.pad, s, c, plan.mode, use_dot)


def _check_device(device: str | torch.device | None) -> torch.device:
    dev = resolve_device(device)
    if dev.type == "cpu" and not interpreting():
        raise EdgesrError("the triton backend runs on CUDA; on the CPU only under Triton's interpreter"
                          " (set TRITON_INTERPRET=1 before starting Python)")
    if dev.type not in ("cpu", "cuda"):
        raise EdgesrError(f"the triton backend runs on CUDA, not {dev.type}")
    return dev


class TritonBackend:
    """Runs a one-layer model (eSR-MAX/TM/TR, Bicubic, scales 2..4) through the Triton kernels.

    As a backend, ``backend(lr)`` maps (N, 1, H, W) float planes (any device) to (N, 1, sH, sW)
    float32 CPU planes equal to ``model(lr)`` (zero padding); `forward` keeps everything on the
    device; `upscale_batch` / `upscale_image` run the whole colour pipeline on uint8/uint16
    images.
    """

    name = "triton"

    def __init__(self, model: nn.Module, device: str | torch.device | None = "cuda",
                 dtype: str | torch.dtype = "float32") -> None:
        reason = unavailable_reason()
        if reason:
            raise EdgesrError(f"triton backend unavailable: {reason}")
        if not supports(model):
            name = getattr(getattr(model, "spec", None), "id", type(model).__name__)
            raise EdgesrError(f"{name}: the triton backend runs eSR-MAX/TM/TR and Bicubic at scales 2..4;"
                              " use backend='torch' (or 'cudagraph' on CUDA)")
        self.device = _check_device(device)
        self.dtype = resolve_dtype(dtype)
        self.scale = model.spec.scale
        self._model = pack(make_plan(model), self.dtype, self.device)
        self._chroma: Packed | None = None
        self._colours: dict[tuple, tuple] = {}
        self.tile, self.warps = tile_setting()
        # bf16 products under the interpreter: NumPy has no bf16 matrix product, so the kernel
        # rounds both sides to bf16 and multiplies in float32 (exact: 8-bit mantissas).
        self._upcast = self.dtype == torch.bfloat16 and interpreting()

    def _chroma_packed(self) -> Packed:
        """Bicubic of this scale in float32 (chroma and alpha: precision matters for uint16)."""
        if self._chroma is None:
            self._chroma = pack(make_plan(create_model(f"Bicubic_s{self.scale}")), torch.float32, self.device)
        return self._chroma

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 4 or lr.shape[1] != 1:
            raise ValueError(f"triton backend expects (N, 1, H, W), got {tuple(lr.shape)}")
        return self.forward(lr).to("cpu", torch.float32)

    def forward(self, lr: torch.Tensor, border: bool = False, in_affine: tuple[float, float] = (1.0, 0.0),
                out_dtype: torch.dtype = torch.float32, out_affine: tuple[float, float] = (1.0, 0.0),
                clamp: tuple[float, float] | None = None) -> torch.Tensor:
        """(N, 1, H, W) float/uint8/uint16 planes -> (N, 1, sH, sW) ``out_dtype``, on the device.

        The model sees ``x * a + b`` for ``in_affine = (a, b)``; its output o leaves as
        ``o * c + d`` (``out_affine``), for integer outputs clamped to ``clamp`` (default the
        dtype's range) and rounded half to even. ``border=True`` reads the nearest edge pixel
        outside the image instead of the model's zero padding (the Upscaler's replicate border).
        """
        if lr.ndim != 4 or lr.shape[1] != 1:
            raise ValueError(f"expected (N, 1, H, W) planes, got {tuple(lr.shape)}")
        x = lr.to(self.device)
        if x.dtype == torch.float64:
            x = x.float()
        x = x.contiguous()
        n, _, h, w = x.shape
        s = self.scale
        out = torch.empty((n, 1, h * s, w * s), dtype=out_dtype, device=self.device)
        if out.numel() == 0:
            return out
        integer = not out_dtype.is_floating_point
        if clamp is None:
            clamp = (0.0, float(torch.iinfo(out_dtype).max)) if integer else (0.0, 0.0)
        self._run(self._model, x, out, (h * w, w, 1, 0), [in_affine[0]], in_affine[1], (h, w, n),
                  (out.stride(0), out.stride(2), out.stride(3)), (*out_affine, *clamp), integer, border)
        return out

    def run(self, x: np.ndarray, out_dtype: type = np.float32, in_affine: tuple[float, float] = (1.0, 0.0),
            out_affine: tuple[float, float] = (1.0, 0.0), clamp: tuple[float, float] | None = None,
            border: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """`FusedBackend.run` on the device: (N, H, W) float32/uint8/uint16 planes (rows may be
        strided, as video planes) -> (N, sH, sW) ``out_dtype``, written into ``out`` if given."""
        if x.ndim != 3:
            raise ValueError(f"expected (N, H, W) planes, got {x.shape}")
        dtype = torch.from_numpy(np.empty(0, out_dtype)).dtype
        result = self.forward(torch.from_numpy(x)[:, None], border, in_affine, dtype, out_affine, clamp)
        result = result[:, 0].cpu().numpy()
        if out is None:
            return result
        out[...] = result
        return out

    def upscale_batch(self, images: torch.Tensor, color: str = "ycbcr", order: str = "rgb",
                      border: bool = True) -> torch.Tensor:
        """(N, H, W, C) uint8/uint16 images, C in 1, 3, 4 -> (N, sH, sW, C), same dtype, device.

        Gray goes through the model as x / peak; colour as the CPU colour pipeline: ``color``
        "ycbcr" (Y' through the model, Cb/Cr by bicubic) or "rgb" (the model on each channel),
        ``order`` "rgb" or "bgr", alpha by bicubic; ``border`` replicates edges for the model.
        """
        if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or images.dtype not in (torch.uint8,
                                                                                       torch.uint16):
            raise EdgesrError(f"expected (N, H, W, 1|3|4) uint8/uint16 images, got"
                              f" {tuple(images.shape)} {images.dtype}")
        x = images.to(self.device).contiguous()
        n, h, w, ch = x.shape
        s = self.scale
        peak = float(torch.iinfo(x.dtype).max)
        out = torch.empty((n, h * s, w * s, ch), dtype=x.dtype, device=self.device)
        if out.numel() == 0:
            return out
        in_strides = (h * w * ch, w * ch, ch, 1)
        if ch == 1:  # gray: integers in, integers out, one kernel
            self._run(self._model, x, out, in_strides, [1.0 / peak], 0.0, (h, w, n),
                      (out.stride(0), out.stride(1), out.stride(2)), (peak, 0.0, 0.0, peak), True, border)
            return out
        spec, mat, ooff = self._colour(ch, peak, color, order)
        planes = torch.empty((n, spec.planes, h * s, w * s), dtype=torch.float32, device=self.device)
        clip = 0
        for p in range(spec.planes):
            kind = spec.kind[p]
            packed = self._chroma_packed() if kind == CHROMA else self._model
            clip |= (kind != CHROMA) << p
            self._run(packed, x, planes[:, p], in_strides, [spec.coef[p][k] for k in range(ch)],
                      spec.offset[p], (h, w, n), (planes.stride(0), planes.stride(2), planes.stride(3)),
                      (1.0, 0.0, 0.0, 0.0), False, border or kind == CHROMA)
        count = h * s * w * s
        grid = (-(-count // MIX_BLOCK), n)
        _kernels().mix_kernel[grid](planes, out, mat, ooff, count, planes.stride(0), planes.stride(1),
                                    out.stride(0), peak, P=spec.planes, OUTS=spec.outs, CLIP=clip,
                                    BLOCK=MIX_BLOCK)
        return out

    def _colour(self, channels: int, peak: float, color: str, order: str):  # noqa: ANN202
        """The colour plan for this layout, with its (4, 4) mix matrix and offsets on the device
        (kept: a host-to-device copy per call would cost more than the mix)."""
        key = (channels, peak, color, order)
        if key not in self._colours:
            spec = plan_color(channels, peak, color, order, MODEL).spec
            mat = torch.tensor([[spec.mat[k][p] for p in range(4)] for k in range(4)], dtype=torch.float32)
            ooff = torch.tensor([spec.ooff[k] for k in range(4)], dtype=torch.float32)
            self._colours[key] = (spec, mat.to(self.device), ooff.to(self.device))
        return self._colours[key]

    def upscale_image(self, image: np.ndarray, color: str = "ycbcr", order: str = "rgb",
                      border: bool = True) -> np.ndarray:
        """A uint8/uint16 (H, W), (H, W, 1|3|4) array -> the upscaled array: one upload, one download."""
        x = image[None] if image.ndim == 3 else image[None, :, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(x))
        out = self.upscale_batch(tensor, color, order, border).cpu().numpy()[0]
        return out if image.ndim == 3 else out[..., 0]

    def _run(self, packed: Packed, x: torch.Tensor, out: torch.Tensor, in_strides: tuple[int, ...],
             coefs: list[float], bias: float, size: tuple[int, int, int], out_strides: tuple[int, int, int],
             out_map: tuple[float, float, float, float], integer: bool, border: bool) -> None:
        """Launch the one-layer kernel over ``size`` = (H, W, N) LR pixels."""
        h, w, n = size
        bh, bw = self.tile
        c = (list(coefs) + [0.0] * 4)[:4]
        sixteen = packed.weight.dtype != torch.float32 and not self._upcast_for(packed)
        _kernels().one_layer_kernel[(-(-w // bw), -(-h // bh), n)](
            x, packed.weight, out, h, w, *in_strides, *c, bias, *out_strides, *out_map,
            PAD_T=packed.pad[0], PAD_L=packed.pad[1], KH=packed.kh, KW=packed.kw,
            KKP=packed.weight.shape[2], S=packed.scale, C=packed.channels, CP=packed.weight.shape[3],
            MODE=packed.mode, NIN=len(coefs), BORDER=bool(border), OUT_INT=integer,
            USE_DOT=packed.use_dot, UPCAST=self._upcast_for(packed),
            PRECISION="tf32" if sixteen else "ieee", BH=bh, BW=bw, num_warps=self.warps)

    def _upcast_for(self, packed: Packed) -> bool:
        return self._upcast and packed.weight.dtype == torch.bfloat16


def self_check(backend: TritonBackend, model: nn.Module) -> bool:
    """True when the kernels match the torch forward on a small random input (guards `auto`
    against a kernel that compiles but computes wrong on this GPU or Triton version)."""
    generator = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 1, 9, 37, generator=generator)
    weight = next(model.parameters())
    with torch.inference_mode():
        reference = model.float()(lr.to(weight.device)).cpu()
    got = backend(lr)
    tolerance = 1e-5 if backend.dtype == torch.float32 else 2e-2
    scale = float(reference.abs().max()) or 1.0
    return bool(torch.allclose(got, reference, rtol=tolerance, atol=tolerance * scale))


def auto_choice(model: nn.Module, device: str | torch.device | None, dtype: str | torch.dtype) -> str | None:
    """``"triton"`` for one-layer models on CUDA when Triton imports and its kernels pass
    `self_check`; None otherwise (the caller picks another backend)."""
    if os.environ.get("EDGESR_TRITON") == "0" or not supports(model) or resolve_device(device).type != "cuda":
        return None
    if unavailable_reason():  # imports triton: only asked on CUDA
        return None
    try:
        backend = TritonBackend(model, device=device, dtype=dtype)
        return "triton" if self_check(backend, model) else None
    except Exception:  # noqa: BLE001 - a kernel that fails to build must not break the user's call
        return None

