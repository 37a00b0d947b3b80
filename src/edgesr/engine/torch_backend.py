"""The reference backend: the PyTorch module itself, on CPU or CUDA, in fp32/fp16/bf16."""

from __future__ import annotations

import torch
from torch import nn

from edgesr.errors import EdgesrError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
          "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU; an unavailable CUDA is a clear error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EdgesrError("device cuda requested but this PyTorch build has no usable CUDA device")
    return device


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Accept "float32"/"fp16"/... or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise EdgesrError(f"unknown dtype {dtype!r}; choose one of {', '.join(sorted(DTYPES))}")
    return DTYPES[dtype]


class TorchBackend:
    """Runs ``model`` on (N, 1, H, W) float32 CPU tensors and returns float32 CPU tensors."""

    name = "torch"

    def __init__(self, model: nn.Module, device: str | torch.device | None = "cpu",
                 dtype: str | torch.dtype = "float32") -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()

    @torch.inference_mode()
    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        out = self.model(lr.to(device=self.device, dtype=self.dtype))
        return out.to(device="cpu", dtype=torch.float32)
