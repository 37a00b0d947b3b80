"""Export models for runtimes outside Python-PyTorch: ONNX (onnxruntime, TensorRT, ...) and TorchScript.

Two graphs, both with dynamic batch, height and width:

* **luma** (default): input ``lr`` (N, 1, H, W) float in 0..1, the model's luma scale
  ((Y - 16) / 219 of studio-range Y) -> output ``hr`` (N, 1, sH, sW), the raw model output
  (unclipped, the model's own zero padding at the borders). This is what the ``onnxruntime``
  backend runs; float16 I/O with ``fp16=True``.
* **colour** (``color="ycbcr"`` or ``"rgb"``, the same two meanings as `edgesr.Upscaler`'s
  ``color``): input ``rgb`` (N, H, W, 3) uint8 (``pixels="uint8"``, the default; or float32 in
  0..255 with ``pixels="float"``) -> ``rgb_hr`` (N, sH, sW, 3) of the same dtype, with
  `edgesr.Upscaler`'s path inside and edge-replicated borders: "ycbcr" sends BT.601 Y through
  the model and Cb/Cr through bicubic; "rgb" sends every channel through the model. Clipped
  (and rounded for uint8). Drop-in for an image or video frame pipeline.

Every entry point takes a model id (the shipped weights, or ``weights=FILE``) or a module.

>>> export_onnx("eSR-MAX_s2_K3_C2", "esr.onnx")                      # doctest: +SKIP

`edgesr.export_check` compares a written file with the torch reference (`Upscaler` for colour
graphs); it lives apart so that the engine's onnxruntime backend can use this module.

Needs the ``onnx`` extra (``pip install edgesr[onnx]``: onnx, onnxruntime) for ONNX.
"""

from __future__ import annotations

import copy
import inspect
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgesr.atomic import atomic_path
from edgesr.errors import EdgesrError
from edgesr.imaging import RGB_TO_YCBCR, YCBCR_OFFSET, YCBCR_TO_RGB
from edgesr.models import ModelSpec, context_pixels, load_model
from edgesr.models.classic import Bicubic, bicubic_kernel, polyphase_weights

OPSET = 17
#: What ``color`` may be: None (the luma graph) or one of `edgesr.Upscaler`'s colour modes.
COLOR_MODES = ("ycbcr", "rgb")
#: Pixel types of the colour graphs' input and output.
PIXEL_TYPES = ("uint8", "float")

ModelLike = str | ModelSpec | nn.Module


def require_package(package: str):  # noqa: ANN202
    try:
        return __import__(package)
    except ImportError:
        raise EdgesrError(f"{package} is not installed; pip install 'edgesr[onnx]'") from None


def color_mode(color: str | None, pixels: str = "uint8") -> tuple[str, str] | None:
    """(colour mode, pixel type) of a colour graph, or None for the luma graph."""
    if color is None:
        return None
    if color not in COLOR_MODES:
        raise EdgesrError(f"unknown color {color!r}; choose ycbcr or rgb (as Upscaler), or None for the"
                          " luma graph")
    if pixels not in PIXEL_TYPES:
        raise EdgesrError(f"unknown pixels {pixels!r}; choose uint8 or float")
    return color, pixels


def _crop(x: torch.Tensor, edge: int) -> torch.Tensor:
    return x[..., edge:-edge, edge:-edge] if edge else x


class ColorUpscaler(nn.Module):
    """RGB in, RGB out: `edgesr.Upscaler`'s ``color`` path (replicate border) as one traceable module.

    Input (N, H, W, 3) uint8 or float 0..255; output (N, sH, sW, 3), uint8 rounded or float
    clipped to 0..255. ``color="ycbcr"``: luma through the model, chroma by bicubic; ``"rgb"``:
    each channel through the model as x/255. The model runs in ``model``'s dtype (float16 with
    ``half()``), colour maths in float32.
    """

    def __init__(self, model: nn.Module, output_uint8: bool = True,
                 dtype: torch.dtype = torch.float32, color: str = "ycbcr") -> None:
        super().__init__()
        self.model, self.output_uint8, self.dtype, self.color = model, output_uint8, dtype, color
        self.scale = model.spec.scale
        self.context = context_pixels(model.spec)
        weight, (before, after) = polyphase_weights(bicubic_kernel(self.scale), self.scale)
        self.chroma_pad = max(before, after)
        # Cb and Cr in one grouped convolution: (2*s*s, 1, T, T), padded to a centred support.
        pad = (self.chroma_pad - before, self.chroma_pad - after) * 2
        self.register_buffer("chroma_weight", F.pad(weight, pad).repeat(2, 1, 1, 1))
        self.register_buffer("to_ycbcr", torch.tensor(RGB_TO_YCBCR.T, dtype=torch.float32))
        self.register_buffer("offset", torch.tensor(YCBCR_OFFSET, dtype=torch.float32))
        self.register_buffer("to_rgb", torch.tensor(YCBCR_TO_RGB.T, dtype=torch.float32))

    def _through_model(self, planes: torch.Tensor) -> torch.Tensor:
        """(P, 1, H, W) float32 in the model's 0..1 scale -> (P, 1, sH, sW) clipped to 0..1."""
        c, s = self.context, self.scale
        out = self.model(F.pad(planes, (c, c, c, c), mode="replicate").to(self.dtype)).float()
        return _crop(out, c * s).clamp(0.0, 1.0)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.color == "rgb":
            n, h, w, _ = rgb.shape
            planes = rgb.float().permute(0, 3, 1, 2).reshape(-1, 1, h, w) / 255.0
            out = 255.0 * self._through_model(planes)
            out = out.reshape(n, 3, h * self.scale, w * self.scale).permute(0, 2, 3, 1)
            return torch.round(out).to(torch.uint8) if self.output_uint8 else out
        ycbcr = (rgb.float() @ self.to_ycbcr + self.offset).permute(0, 3, 1, 2)  # (N, 3, H, W)
        s = self.scale
        y = 16.0 + 219.0 * self._through_model((ycbcr[:, :1] - 16.0) / 219.0)
        p = self.chroma_pad
        chroma = F.conv2d(F.pad(ycbcr[:, 1:], (p, p, p, p), mode="replicate"), self.chroma_weight, groups=2)
        chroma = F.pixel_shuffle(chroma, s)  # the replicate pad is exactly the support: no crop
        out = (torch.cat([y, chroma], dim=1).permute(0, 2, 3, 1) - self.offset) @ self.to_rgb
        out = out.clamp(0.0, 255.0)
        return torch.round(out).to(torch.uint8) if self.output_uint8 else out


class _FixedBicubic(nn.Module):
    """`Bicubic` with its polyphase filters computed once, so the graph holds a plain constant."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.spec, self.scale = model.spec, model.scale
        weight, self.pads = polyphase_weights(model.net.weight[0, 0].detach(), model.scale)
        self.register_buffer("weight", weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = self.pads
        x = F.pad(x, (before, after, before, after))
        return F.pixel_shuffle(F.conv2d(x, self.weight.to(x.dtype)), self.scale)


def _graph(model: nn.Module, fp16: bool, mode: tuple[str, str] | None
           ) -> tuple[nn.Module, torch.Tensor, str, str]:
    """(module to trace, example input, input name, output name)."""
    model = copy.deepcopy(model).float().eval()
    if isinstance(model, Bicubic):
        model = _FixedBicubic(model)
    if fp16:
        model = model.half()
    if mode is None:
        return model, torch.rand(1, 1, 24, 20, dtype=torch.float16 if fp16 else torch.float32), "lr", "hr"
    color, pixels = mode
    example = torch.randint(0, 256, (1, 24, 20, 3), dtype=torch.uint8)
    dtype = torch.float16 if fp16 else torch.float32
    example = example if pixels == "uint8" else example.float()
    return ColorUpscaler(model, pixels == "uint8", dtype, color).eval(), example, "rgb", "rgb_hr"


def _torch_onnx_export(module: nn.Module, example: torch.Tensor, target: Path, names: tuple[str, str],
                       axes: dict) -> None:
    kwargs = {"input_names": [names[0]], "output_names": [names[1]], "dynamic_axes": axes,
              "opset_version": OPSET, "do_constant_folding": True}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter: no onnxscript needed, ~10x faster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(target), **kwargs)


def export_onnx(model: ModelLike, path: str | os.PathLike, fp16: bool = False, color: str | None = None,
                check: bool = True, weights: str | os.PathLike | None = None, pixels: str = "uint8") -> Path:
    """Write ``model`` as an ONNX graph (opset 17, dynamic N/H/W) to ``path``, atomically.

    Args:
        model: a model id (its shipped weights, or ``weights``) or a module from `create_model`.
        fp16: store weights and run the model in float16 (luma graph: float16 input and output).
        color: None for the luma graph; "ycbcr" or "rgb" for the RGB graph (`Upscaler`'s modes).
        check: validate with ``onnx.checker`` (full check, with shape inference).
        weights: weight file for an id.
        pixels: colour graphs' pixel type, "uint8" or "float" (0..255).
    Returns:
        the written path.
    """
    model = load_model(model, weights)
    mode = color_mode(color, pixels)
    module, example, name_in, name_out = _graph(model, fp16, mode)
    h, w = (2, 3) if mode is None else (1, 2)  # NCHW luma planes, NHWC RGB images
    axes = {name_in: {0: "batch", h: "height", w: "width"},
            name_out: {0: "batch", h: "out_height", w: "out_width"}}
    path = Path(path)
    with atomic_path(path) as tmp:
        _torch_onnx_export(module, example, tmp, (name_in, name_out), axes)
        if check:
            onnx = require_package("onnx")
            try:
                onnx.checker.check_model(str(tmp), full_check=True)
            except onnx.checker.ValidationError as error:
                raise EdgesrError(f"{path}: exported graph fails onnx.checker ({error})") from None
    return path


def onnx_bytes(model: ModelLike, fp16: bool = False, color: str | None = None) -> bytes:
    """The ONNX graph of `export_onnx` as bytes (for an in-memory onnxruntime session)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "model.onnx"
        export_onnx(model, target, fp16=fp16, color=color, check=False)
        return target.read_bytes()


def export_torchscript(model: ModelLike, path: str | os.PathLike, fp16: bool = False,
                       color: str | None = None, weights: str | os.PathLike | None = None,
                       pixels: str = "uint8") -> Path:
    """Write a traced, frozen TorchScript module (same inputs/outputs as the ONNX graphs).

    Load it anywhere with ``torch.jit.load(path)`` (Python) or ``torch::jit::load`` (C++).
    """
    model = load_model(model, weights)
    mode = color_mode(color, pixels)
    module, example, _, _ = _graph(model, fp16, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = torch.nn.functional.pad(example, (0, 0, 0, 3, 0, 5)) if mode else example[..., :19, :17]
        with torch.no_grad():
            traced = torch.jit.trace(module, (example,), check_inputs=[(other,)])
        frozen = torch.jit.freeze(traced.eval())
    path = Path(path)
    with atomic_path(path) as tmp:
        frozen.save(str(tmp))
    return path
