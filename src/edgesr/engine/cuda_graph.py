"""CUDA graphs for the deep families (ESPCN, eSR-CNN, FSRCNN) and any model on CUDA.

Why: on a GPU these small networks are bound by kernel launches, not arithmetic (H100, fp16,
Full-HD: ESPCN_s2_D4_S6 0.38 ms and eSR-CNN_s2_C4_D3_S9 0.48 ms for a few GFLOP). A CUDA graph
records the forward's launches once per input shape and replays them with one launch. The gain
has not been measured yet (no GPU was lent when this was written): the backend is opt-in
(``backend="cudagraph"``) until a GPU run shows it pays.

Each shape's graph owns its input and output buffers: a call copies the input in, replays, and
returns a copy of the output (a caller keeping two outputs must not see the second overwrite
the first). At most `MAX_GRAPHS` shapes are kept, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edgesr.engine.torch_backend import resolve_device, resolve_dtype
from edgesr.errors import EdgesrError

MAX_GRAPHS = 8
WARMUP = 3  # eager calls on a side stream before capture (cuDNN picks its algorithms there)


class CudaGraphBackend:
    """The torch forward on CUDA, replayed from a CUDA graph captured per input shape."""

    name = "cudagraph"

    def __init__(self, model: nn.Module, device: str | torch.device | None = "cuda",
                 dtype: str | torch.dtype = "float16") -> None:
        self.device = resolve_device(device)
        if self.device.type != "cuda":
            raise EdgesrError("the cudagraph backend needs a CUDA device; use backend='torch' elsewhere")
        self.dtype = resolve_dtype(dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self._graphs: OrderedDict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]]
        self._graphs = OrderedDict()

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 4 or lr.shape[1] != 1:
            raise ValueError(f"cudagraph backend expects (N, 1, H, W), got {tuple(lr.shape)}")
        return self.forward(lr.to(device=self.device, dtype=self.dtype)).to("cpu", torch.float32)

    @torch.inference_mode()
    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) on the device in the backend's dtype -> the model's output (a new tensor)."""
        key = tuple(lr.shape)
        if key not in self._graphs:
            self._graphs[key] = self._capture(lr)
            while len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(lr)
        graph.replay()
        return static_out.clone()

    def _capture(self, lr: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static_in = lr.detach().clone()
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP):
                self.model(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.model(static_in)
        return graph, static_in, static_out
