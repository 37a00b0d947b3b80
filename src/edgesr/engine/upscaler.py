"""`Upscaler`: turns image arrays into upscaled image arrays with one model.

Colour handling (``color="ycbcr"``, the default): BT.601 Y goes through the model as
(Y - 16) / 219, Cb/Cr (and alpha) are upscaled by bicubic, then back to RGB. A grayscale image
is its own luma. ``color="rgb"`` runs every colour channel through the model instead.
Borders: the LR input is extended by edge replication over the model's support before the
model runs (``border="replicate"``), so borders do not darken; ``border="zero"`` gives the raw
model output of the official code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import EdgesrError
from edgesr.engine import native, tiling
from edgesr.engine.backends import make_backend
from edgesr.engine.color import MODEL, PRECOMPUTED, ColorPlan, plan_color
from edgesr.engine.fused import FusedBackend, make_plan
from edgesr.engine.triton_backend import TritonBackend
from edgesr.imaging import luma_to_model, max_value, model_to_luma, rgb_to_ycbcr, ycbcr_to_rgb
from edgesr.models import ModelSpec, context_pixels, create_model, load_model


class Upscaler:
    """Upscale images (numpy arrays) or luma planes (tensors) with one edge-SR model.

    Args:
        model: a model id (``"eSR-TM_s2_K7_C16"``) or a module from `create_model`.
        weights: weight file for an id (official ``.model`` or edgesr ``.safetensors``).
        pretrained: None (default): the weights edgesr ships for the id, as the CLI does (an id
            that ships nothing needs ``weights``); False: an untrained network, only when asked
            (`edgesr.models.load_model` holds the rule).
        device: "cpu", "cuda", "cuda:1" or "auto".
        dtype: "float32", "float16" (CUDA) or "bfloat16".
        color: "ycbcr" (model on luma, bicubic chroma) or "rgb" (model on each channel).
        channels: channel order of colour arrays, "rgb" or "bgr" (OpenCV's), in and out.
        border: "replicate" (edge-extended input) or "zero" (official zero padding).
        backend: inference engine name (see `edgesr.engine.backends.BACKENDS`); "auto" (the
            default) picks the fastest correct one for the model and device (the fused kernel
            for one-layer models on CPU, OpenVINO for eSR-CNN/ESPCN/FSRCNN on CPU when the
            ``openvino`` extra is installed, the Triton kernels on CUDA when Triton is
            installed). Colour conversion and the bicubic chroma run in the
            native colour pipeline (`edgesr.engine.color`) around any backend when the kernel
            compiles, else in NumPy/torch.
        precision: "fp32" (default), or "bf16", "int8" (x86 with AVX512-BF16 / VNNI) or "fp16"
            (ARMv8.2-A) for the convolution of eSR-MAX/TM/TR in the fused kernel (see
            `FusedBackend`); opt-in: the README states what each costs in PSNR and gains in speed.
        tile: core tile size in LR pixels for seam-free tiling (bit-identical stitching, see
            `edgesr.engine.tiling`; windows run in parallel with one intra-op thread each, so
            results never depend on the thread count); None tiles only when the working set
            would exceed ``memory_budget`` bytes (default `tiling.DEFAULT_BUDGET`, 2 GiB); 0
            never tiles.

    >>> up = Upscaler("Bicubic_s2")
    >>> up.upscale(np.zeros((4, 6, 3), np.uint8)).shape
    (8, 12, 3)
    """

    def __init__(self, model: str | nn.Module = "Bicubic_s2", weights: str | None = None,
                 device: str | None = "cpu", dtype: str = "float32", color: str = "ycbcr",
                 border: str = "replicate", backend: str = "auto", tile: int | None = None,
                 memory_budget: int | None = None, pretrained: bool | None = None,
                 channels: str = "rgb", precision: str = "fp32") -> None:
        module = load_model(model, weights, pretrained)
        if color not in ("ycbcr", "rgb"):
            raise EdgesrError(f"unknown color mode {color!r}; choose ycbcr or rgb")
        if border not in ("replicate", "zero"):
            raise EdgesrError(f"unknown border mode {border!r}; choose replicate or zero")
        if channels not in ("rgb", "bgr"):
            raise EdgesrError(f"unknown channel order {channels!r}; choose rgb or bgr")
        self.channels = channels
        self.spec: ModelSpec = module.spec
        self.scale = self.spec.scale
        self.color, self.border = color, border
        self.backend = make_backend(backend, module, device=device, dtype=dtype, precision=precision)
        self.precision = precision
        self.context = context_pixels(self.spec) if border == "replicate" else 0
        self._chroma = create_model(f"Bicubic_s{self.scale}")
        # Colour, chroma and alpha in the native pipeline when the kernel compiles; else the torch
        # bicubic and NumPy colour maths (`_upscale_numpy`).
        self._native = native.load() is not None
        if self._native:
            self._chroma_plan = make_plan(self._chroma)  # holds the arrays the filter points to
            self._chroma_filter = self._chroma_plan.native_filter()
        else:
            self._chroma_engine = make_backend("torch", self._chroma)
        self._color_plans: dict[tuple[int, float], ColorPlan] = {}
        self.tile, self.memory_budget = tile, memory_budget or tiling.DEFAULT_BUDGET
        # Tiles need the model's support and the bicubic chroma's, whatever the border mode.
        self._margin = max(context_pixels(self.spec), context_pixels(self._chroma.spec))
        self._strips = tiling.needs_full_width(self.spec)

    @property
    def model_id(self) -> str:
        return self.spec.id

    def run_model(self, planes: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) model-scale inputs (0..1) -> (N, 1, sH, sW) raw outputs (unclipped)."""
        if planes.ndim != 4 or planes.shape[1] != 1:
            raise ValueError(f"run_model expects (N, 1, H, W), got {tuple(planes.shape)}")
        tile = self._tile_for(planes.shape[-2], planes.shape[-1], planes.shape[0], image=False)
        if tile is None:
            return self._with_border(self.backend, planes)
        return tiling.tiled_apply(lambda p: self._with_border(self.backend, p), planes, self.scale,
                                  self._margin, tile, (-2, -1), self._workers(), self._strips)

    def _tile_for(self, height: int, width: int, planes: int, image: bool) -> int | None:
        """The tile size to use for an input this big, or None to run it whole.

        An explicit ``tile`` always takes the windowed path (one window or more), so its results
        never depend on the thread count; automatic tiling only starts above the budget.
        """
        if tiling.in_window() or self.tile == 0:
            return None
        if self.tile is not None:
            return self.tile
        tile = tiling.choose_tile(self.spec, height, width, self.memory_budget, planes, image, self._workers())
        if not tile or len(tiling.plan_tiles(height, width, self._margin, tile, self._strips)) == 1:
            return None
        return tile

    def _workers(self) -> int:
        # Windows run in parallel threads (one intra-op thread each) on the CPU torch backend.
        device = getattr(self.backend, "device", None)
        on_cpu = getattr(device, "type", None) == "cpu" and getattr(self.backend, "name", "") == "torch"
        return torch.get_num_threads() if on_cpu else 1

    def _with_border(self, fn, planes: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        c = self.context
        if c == 0:
            return fn(planes)
        padded = _replicate_pad(planes, c)
        out = fn(padded)
        e = c * self.scale
        return out[..., e : out.shape[-2] - e, e : out.shape[-1] - e]

    def bicubic(self, planes: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) planes -> (N, 1, sH, sW) by bicubic with clamped borders: the chroma path.

        Shared with the video path so that frames and images treat chroma the same way.
        """
        if self._native:
            x = planes.detach().to("cpu", torch.float32).contiguous().numpy()[:, 0]
            out = np.empty((x.shape[0], x.shape[1] * self.scale, x.shape[2] * self.scale), np.float32)
            if out.size:
                native.plane(x, out, self._chroma_filter, self.scale, True, torch.get_num_threads())
            return torch.from_numpy(out)[:, None]
        c = context_pixels(self._chroma.spec)
        with torch.inference_mode():
            out = self._chroma_engine(_replicate_pad(planes, c))
        e = c * self.scale
        return out[..., e : out.shape[-2] - e, e : out.shape[-1] - e]

    def bicubic_plane(self, plane: np.ndarray, out: np.ndarray) -> None:
        """Bicubic with clamped borders from one integer plane (H, W) into ``out`` (sH, sW) of the
        same dtype, rounded; both may have strided rows (video planes, read and written in place)."""
        peak = max_value(out.dtype)
        if not self._native:
            planes = torch.from_numpy(plane.astype(np.float32))[None, None]
            out[...] = self.bicubic(planes)[0, 0].round().clamp(0, peak).numpy().astype(out.dtype)
            return
        native.plane(plane[None], out[None], self._chroma_filter, self.scale, True,
                     torch.get_num_threads(), out_map=(1.0, 0.0, 0.0, peak))

    def upscale_luma(self, y: np.ndarray) -> np.ndarray:
        """Studio-range luma (H, W) float (16..235) -> upscaled luma (sH, sW), 16..235."""
        planes = torch.from_numpy(luma_to_model(np.asarray(y, np.float32)))[None, None]
        return model_to_luma(self.run_model(planes))[0, 0].numpy()

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """Upscale a uint8/uint16 image (H, W), (H, W, 3) or (H, W, 4); same dtype and layout.

        Images whose working set exceeds the memory budget (or any, with ``tile``) run in
        seam-free tiles: only the input, the output and a few windows are in memory at once.
        """
        if isinstance(image, np.ndarray) and image.ndim in (2, 3):
            planes = 3 if image.ndim == 3 and self.color == "rgb" else 1
            tile = self._tile_for(image.shape[0], image.shape[1], planes, image=True)
            if tile is not None:
                return tiling.tiled_apply(self._upscale_whole, image, self.scale, self._margin, tile,
                                          (0, 1), self._workers(), self._strips)
        return self._upscale_whole(image)

    def _upscale_whole(self, image: np.ndarray) -> np.ndarray:
        """`upscale` in one piece."""
        if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
            raise EdgesrError(f"expected a uint8 or uint16 image, got {getattr(image, 'dtype', type(image))}")
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise EdgesrError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {image.shape}")
        if isinstance(self.backend, TritonBackend):  # the whole colour pipeline on the device
            return self.backend.upscale_image(image, self.color, self.channels, self.border == "replicate")
        if not self._native:
            return self._upscale_numpy(image)
        x = image[None] if image.ndim == 3 else image[None, :, :, None]
        if x.strides[2] != x.itemsize * x.shape[3]:  # the kernel needs contiguous pixels
            x = np.ascontiguousarray(x)
        n, h, w, channels = x.shape
        s = self.scale
        peak = max_value(image.dtype)
        fused = isinstance(self.backend, FusedBackend)
        replicate = self.border == "replicate"
        if channels == 1 and fused:
            # Gray through the model in one pass: integers in, integers out.
            out = self.backend.run(x[..., 0], image.dtype, (1.0 / peak, 0.0), (peak, 0.0), border=replicate)
            return out[0] if image.ndim == 2 else out[0, ..., None]
        plan = self._color_plan(channels, peak, MODEL if fused else PRECOMPUTED)
        pre = None
        if not fused:
            planes = native.read_planes(x, plan.spec, plan.model_planes)[0]
            pre = self.run_model(torch.from_numpy(planes)[:, None])[:, 0]
            pre = pre.to("cpu", torch.float32).contiguous().numpy()[None]
        out = np.empty((n, h * s, w * s, channels), image.dtype)
        native.color(x, out, self.backend.filter if fused else None, self._chroma_filter, plan.spec, s,
                     replicate, torch.get_num_threads(), pre,
                     native.PRECISIONS[self.backend.precision] if fused else 0)
        return out[0] if image.ndim == 3 else out[0, ..., 0]

    def _color_plan(self, channels: int, peak: float, kind: int) -> ColorPlan:
        key = (channels, peak)
        if key not in self._color_plans:
            self._color_plans[key] = plan_color(channels, peak, self.color, self.channels, kind)
        return self._color_plans[key]

    def _upscale_numpy(self, image: np.ndarray) -> np.ndarray:
        """`upscale` without the native kernel: NumPy colour maths around the backend."""
        if image.ndim == 3 and image.shape[2] >= 3 and self.channels == "bgr":
            flipped = np.concatenate([image[..., 2::-1], image[..., 3:]], axis=-1)
            out = self._upscale_numpy_rgb(flipped)
            return np.concatenate([out[..., 2::-1], out[..., 3:]], axis=-1)
        return self._upscale_numpy_rgb(image)

    def _upscale_numpy_rgb(self, image: np.ndarray) -> np.ndarray:
        peak = max_value(image.dtype)
        pixels = image.astype(np.float32) * (255.0 / peak)  # 0..255 float whatever the depth
        if pixels.ndim == 3 and pixels.shape[2] == 1:
            pixels = pixels[..., 0]
        if pixels.ndim == 2:
            out = self._planes_through_model(pixels[None])[0]
        else:
            rgb, alpha = pixels[..., :3], pixels[..., 3:]
            if self.color == "rgb":
                out = self._planes_through_model(np.moveaxis(rgb, -1, 0))
                out = np.moveaxis(out, 0, -1)
            else:
                ycbcr = _color_planes(rgb, rgb_to_ycbcr)
                y = self.upscale_luma(ycbcr[0])
                chroma = self.bicubic(torch.from_numpy(ycbcr[1:])[:, None])[:, 0].numpy()
                out = _color_planes(np.stack([y, chroma[0], chroma[1]]), ycbcr_to_rgb, planes_in=True)
            if alpha.shape[-1]:
                a = self.bicubic(torch.from_numpy(np.ascontiguousarray(alpha[..., 0]))[None, None])
                out = np.concatenate([out, a[0, 0].numpy()[..., None]], axis=-1)
        if image.ndim == 3 and image.shape[2] == 1:
            out = out[..., None]
        return np.clip(np.rint(out * (peak / 255.0)), 0, peak).astype(image.dtype)

    def _planes_through_model(self, planes: np.ndarray) -> np.ndarray:
        """(P, H, W) full-range 0..255 planes, each treated as luma (R = G = B) -> (P, sH, sW)."""
        x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32) / 255.0)[:, None]
        return (255.0 * self.run_model(x).clamp(0.0, 1.0))[:, 0].numpy()


def _replicate_pad(planes: torch.Tensor, pixels: int) -> torch.Tensor:
    """Edge-replicate padding (N, C, H, W); works when the image is smaller than the pad.

    F.pad's replicate mode: 0.05 ms on 960x540 against 1.9 ms for the former fancy indexing.
    """
    return F.pad(planes, (pixels, pixels, pixels, pixels), mode="replicate")


def _color_planes(pixels: np.ndarray, convert, planes_in: bool = False) -> np.ndarray:  # noqa: ANN001
    """Apply an affine colour map (`rgb_to_ycbcr` / `ycbcr_to_rgb`) in float32.

    ``pixels`` is (H, W, 3) (or (3, H, W) with ``planes_in``); returns planes (3, H, W) float32,
    or channels-last (H, W, 3) when the input was planes. The map's matrix and offset are read
    from ``convert`` itself, so the colour definition stays in `edgesr.imaging`.
    """
    offset = np.asarray(convert(np.zeros(3)), np.float64)
    matrix = np.asarray(convert(np.eye(3)), np.float64) - offset  # row j = image of basis j
    channels = [pixels[i] for i in range(3)] if planes_in else [pixels[..., i] for i in range(3)]
    shape = channels[0].shape
    out = np.empty((*shape, 3) if planes_in else (3, *shape), np.float32)
    for k in range(3):
        target = out[..., k] if planes_in else out[k]
        target[...] = np.float32(offset[k])
        for j in range(3):
            target += channels[j].astype(np.float32, copy=False) * np.float32(matrix[j, k])
    return out
