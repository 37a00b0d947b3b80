"""Backend registry: every inference engine behind one call signature.

A backend is built as ``Backend(model, device=..., dtype=...)`` and called as
``backend(lr) -> hr`` with lr a (N, 1, H, W) float32 CPU tensor in model scale (0..1) and hr
(N, 1, sH, sW) float32 CPU, unclipped; it must match the torch reference forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgesr.engine.cuda_graph import CudaGraphBackend
from edgesr.engine.fused import FusedBackend, auto_backend
from edgesr.engine.onnx_backend import OnnxRuntimeBackend
from edgesr.engine.openvino_backend import OpenVinoBackend
from edgesr.engine.openvino_backend import auto_build as openvino_auto
from edgesr.engine.torch_backend import TorchBackend
from edgesr.engine.triton_backend import TritonBackend, auto_choice
from edgesr.errors import EdgesrError

Backend = Callable[[torch.Tensor], torch.Tensor]

BACKENDS: dict[str, type] = {"torch": TorchBackend}
BACKENDS["onnxruntime"] = OnnxRuntimeBackend  # optional extra; imports onnxruntime when built
BACKENDS["fused"] = FusedBackend  # compiled C kernel for one-layer models on CPU (engine/fused.py)
BACKENDS["triton"] = TritonBackend  # fused Triton kernels for one-layer models on CUDA (optional extra)
BACKENDS["openvino"] = OpenVinoBackend  # the deep families' ONNX graph by OpenVINO on CPU (optional extra)
BACKENDS["cudagraph"] = CudaGraphBackend  # the torch forward replayed from CUDA graphs (opt-in, unmeasured)


def make_backend(name: str, model: nn.Module, device: str | None = "cpu",
                 dtype: str = "float32", precision: str = "fp32") -> Backend:
    """Build the backend called ``name`` for ``model``; "auto" picks the Triton kernels on CUDA
    (`triton_backend.auto_choice`), OpenVINO for the deep families on CPU when its extra is
    installed (`openvino_backend.auto_build`), else `fused.auto_backend`. A reduced ``precision``
    ("bf16", "int8", "fp16") is the fused kernel's alone (`FusedBackend`)."""
    if precision != "fp32":
        if name not in ("auto", "fused"):
            raise EdgesrError(f"precision {precision!r} runs in the fused CPU kernel; not with backend {name!r}")
        return FusedBackend(model, device=device, dtype=dtype, precision=precision)
    if name == "auto":
        built = openvino_auto(model, device, dtype)
        if built is not None:
            return built
        name = auto_choice(model, device, dtype) or auto_backend(model, device, dtype)
    if name not in BACKENDS:
        raise EdgesrError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](model, device=device, dtype=dtype)
