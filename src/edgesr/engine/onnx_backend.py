"""The ``onnxruntime`` backend: the model exported to ONNX (`edgesr.export`) and run by onnxruntime.

Same contract as every backend: (N, 1, H, W) float32 CPU tensor in 0..1 -> (N, 1, sH, sW)
float32 CPU, the raw model output; equal to the torch reference within 1e-5 (float32).
``dtype="float16"`` runs the float16 graph (inputs and outputs cast here). Needs the ``onnx``
extra (``pip install edgesr[onnx]``); importing this module does not import onnxruntime.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from edgesr.engine.torch_backend import resolve_dtype
from edgesr.export import onnx_bytes
from edgesr.errors import EdgesrError

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntimeBackend:
    """Runs ``model`` (exported in memory) or an existing luma ``.onnx`` file with onnxruntime."""

    name = "onnxruntime"

    def __init__(self, model: nn.Module | str | os.PathLike, device: str | None = "cpu",
                 dtype: str | torch.dtype = "float32") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EdgesrError("backend onnxruntime needs onnxruntime; pip install 'edgesr[onnx]'") from None
        self.dtype = resolve_dtype(dtype)
        if self.dtype not in (torch.float32, torch.float16):
            raise EdgesrError(f"backend onnxruntime runs float32 or float16, not {dtype}")
        available = ort.get_available_providers()
        if device in (None, "auto"):
            kind = "cuda" if "CUDAExecutionProvider" in available else "cpu"
        else:
            kind = str(device).split(":")[0]
        if kind not in _PROVIDERS or _PROVIDERS[kind] not in ort.get_available_providers():
            raise EdgesrError(f"backend onnxruntime: no {device!r} execution provider here "
                              f"(available: {', '.join(ort.get_available_providers())})")
        self.device = torch.device(kind)
        if isinstance(model, nn.Module):
            source = onnx_bytes(model, fp16=self.dtype == torch.float16)
        else:
            source = str(model)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(source, options, providers=[_PROVIDERS[kind]])
        self._input = self.session.get_inputs()[0].name
        self._numpy_dtype = np.float16 if self.dtype == torch.float16 else np.float32

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(lr.detach().cpu().numpy(), dtype=self._numpy_dtype)
        out = self.session.run(None, {self._input: x})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))
