"""Parity of an exported graph with the torch reference: the check `edgesr export` prints.

Luma graphs are compared with the model's own forward; colour graphs with `edgesr.Upscaler`
(so this module sits above both `edgesr.export` and `edgesr.engine`, which keeps the engine's
onnxruntime backend free to use `edgesr.export`).

>>> onnx_parity("eSR-MAX_s2_K3_C2", export_onnx("eSR-MAX_s2_K3_C2", "esr.onnx")) < 1e-5  # doctest: +SKIP
True
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
from torch import nn

from edgesr.engine import Upscaler
from edgesr.errors import EdgesrError
from edgesr.export import ModelLike, color_mode, require_package
from edgesr.models import load_model


def _random_input(mode: tuple[str, str] | None, fp16: bool, seed: int, size: tuple[int, int]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if mode is None:
        return torch.rand(2, 1, *size, generator=generator).to(torch.float16 if fp16 else torch.float32)
    rgb = torch.randint(0, 256, (2, *size, 3), generator=generator, dtype=torch.uint8)
    return rgb if mode[1] == "uint8" else rgb.float()


def reference_output(model: nn.Module, x: torch.Tensor, mode: tuple[str, str] | None) -> np.ndarray:
    """What an exported graph must give for input ``x``: the torch model, or `Upscaler` (colour)."""
    if mode is None:
        with torch.inference_mode():
            return model.float()(x.float()).numpy()
    color, pixels = mode
    upscaler = Upscaler(model, border="replicate", color=color, tile=0)
    frames = [upscaler.upscale(frame.numpy().round().clip(0, 255).astype(np.uint8)) for frame in x]
    return np.stack(frames).astype(np.float32 if pixels == "float" else np.uint8)


def onnx_parity(model: ModelLike, path: str | os.PathLike, fp16: bool = False, color: str | None = None,
                size: tuple[int, int] = (37, 29), seed: int = 0, weights: str | os.PathLike | None = None,
                pixels: str = "uint8") -> float:
    """Largest absolute difference between onnxruntime on ``path`` and the torch reference.

    Luma graph: vs ``model`` on random (2, 1, H, W) inputs in 0..1 (expect <= 1e-5 in float32).
    Colour graph: vs `Upscaler.upscale` on random uint8 images, in 0..255 levels (float32 colour
    maths inside the graph against float64 in `Upscaler`: expect <= 1 level).
    """
    model = load_model(model, weights)
    ort = require_package("onnxruntime")
    mode = color_mode(color, pixels)
    x = _random_input(mode, fp16, seed, size)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    want = reference_output(copy.deepcopy(model), x, mode)
    if got.shape != want.shape:
        raise EdgesrError(f"{path}: output shape {got.shape}, reference {want.shape}")
    return max_difference(got, want, path)


def max_difference(got: np.ndarray, want: np.ndarray, path: str | os.PathLike) -> float:
    """Largest |got - want|; a NaN or infinity on either side is an error, never a parity figure."""
    if not (np.isfinite(got).all() and np.isfinite(want).all()):
        raise EdgesrError(f"{path}: the exported model or its torch reference gives NaN or infinite"
                          " outputs (fp16 overflow or broken weights); parity not established")
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())


def torchscript_parity(model: ModelLike, path: str | os.PathLike, fp16: bool = False,
                       color: str | None = None, size: tuple[int, int] = (37, 29), seed: int = 0,
                       weights: str | os.PathLike | None = None, pixels: str = "uint8") -> float:
    """`onnx_parity` for a TorchScript file written by `export_torchscript`."""
    model = load_model(model, weights)
    mode = color_mode(color, pixels)
    x = _random_input(mode, fp16, seed, size)
    loaded = torch.jit.load(str(path))
    with torch.inference_mode():
        got = loaded(x).numpy()
    want = reference_output(copy.deepcopy(model), x, mode)
    return max_difference(got, want, path)
