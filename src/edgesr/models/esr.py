"""The edge-SR one-layer upscalers (eSR-MAX, eSR-TM, eSR-TR) and eSR-CNN.

Each one-layer model is a single K x K convolution of the LR image into F*s*s*C channels, a
PixelShuffle to C channels (F per template) at HR resolution, and a per-pixel reduction:

* eSR-MAX (F=1): max over the C filtered channels (a maxout of upscaling filters).
* eSR-TM (F=2): channels split as [values | keys]; sum_c value_c * softmax_c(key) (template
  matching: the key filters score how well each template fits, the values upscale).
* eSR-TR (F=3): [values | queries | keys]; sum_c value_c * softmax_c(query * key).
* eSR-CNN: two small conv + tanh layers, then the TM head with softmax(key * key).

State dicts follow the official release (``filter.weight`` etc.) so that the official
``.model`` files load with ``strict=True``. All models take (N, 1, H, W) float luma in 0..1
((Y-16)/219 of studio-range Y) and return (N, 1, sH, sW), unclipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgesr.models.spec import ONE_LAYER_FACTORS, ModelSpec


def init_centre_tap(conv: nn.Conv2d) -> None:
    """Xavier-normal weights plus a centre tap of 1: every channel starts as a nearest upscaler.

    This is how the paper's code initialises, so training starts from a sensible output.
    """
    nn.init.xavier_normal_(conv.weight, gain=1.0)
    k = conv.weight.shape[-1] // 2
    with torch.no_grad():
        conv.weight[:, 0, k, k] = 1.0


class OneLayerSR(nn.Module):
    """Shared body of eSR-MAX/TM/TR: ``filter`` conv, PixelShuffle, then `reduce`."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.scale, self.channels, self.kernel_size = spec.scale, spec.C, spec.K
        self.factor = ONE_LAYER_FACTORS[spec.family]
        self.filter = nn.Conv2d(1, self.factor * spec.scale**2 * spec.C, spec.K,
                                padding=spec.K // 2, bias=False)
        init_centre_tap(self.filter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(F.pixel_shuffle(self.filter(x), self.scale))

    def forward_columns(self, columns: torch.Tensor) -> torch.Tensor:
        """The model on independent LR pixels: (N, K*K) neighbourhoods -> (N, s*s) HR blocks.

        Equal to `forward` at every pixel whose neighbourhood is given; one GEMM instead of a
        1-channel convolution, which is what makes training on CPU fast.
        """
        n, s = columns.shape[0], self.scale
        responses = columns @ self.filter.weight.reshape(self.filter.weight.shape[0], -1).T
        return self.reduce(responses.reshape(n, -1, s, s)).reshape(n, s * s)

    def reduce(self, shuffled: torch.Tensor) -> torch.Tensor:
        """(N, F*C, sH, sW) filtered channels -> (N, 1, sH, sW)."""
        raise NotImplementedError


class ESRMax(OneLayerSR):
    """eSR-MAX: the output is the largest of C upscaling filters at each pixel."""

    def reduce(self, shuffled: torch.Tensor) -> torch.Tensor:
        return shuffled.amax(dim=1, keepdim=True)


class ESRTM(OneLayerSR):
    """eSR-TM: softmax over key responses weights the value (upscaling) filters."""

    def reduce(self, shuffled: torch.Tensor) -> torch.Tensor:
        value, key = shuffled.split(self.channels, dim=1)
        return (value * torch.softmax(key, dim=1)).sum(dim=1, keepdim=True)


class ESRTR(OneLayerSR):
    """eSR-TR: attention weights softmax(query * key) over the value filters."""

    def reduce(self, shuffled: torch.Tensor) -> torch.Tensor:
        value, query, key = shuffled.split(self.channels, dim=1)
        return (value * torch.softmax(query * key, dim=1)).sum(dim=1, keepdim=True)


class ESRCNN(nn.Module):
    """eSR-CNN: conv 5x5 (D) + tanh, conv 3x3 (S) + tanh, conv 3x3 -> 2*s*s*C, TM head on key^2."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.scale, self.channels = spec.scale, spec.C
        self.filter = nn.Sequential(
            nn.Conv2d(1, spec.D, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(spec.D, spec.S, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(spec.S, 2 * spec.scale**2 * spec.C, 3, padding=1, bias=False),
            nn.PixelShuffle(spec.scale),
        )
        for layer in self.filter:
            if isinstance(layer, nn.Conv2d):
                nn.init.xavier_normal_(layer.weight, gain=1.0)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, key = self.filter(x).split(self.channels, dim=1)
        return (value * torch.softmax(key * key, dim=1)).sum(dim=1, keepdim=True)
