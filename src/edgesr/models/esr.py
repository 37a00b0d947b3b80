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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.models.family import Family, Templates
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
        value, *others = shuffled.split(self.channels, dim=1)
        scores = self.scores(others)
        if scores is None:
            return value.amax(dim=1, keepdim=True)
        return (value * torch.softmax(scores, dim=1)).sum(dim=1, keepdim=True)

    def scores(self, others: list[torch.Tensor]) -> torch.Tensor | None:
        """What softmax weighs the values by, from the other filter groups; None: take the max."""
        raise NotImplementedError

    def templates(self, x: torch.Tensor) -> Templates:
        """(values, scores) at HR size: the C upscaled candidates and their softmax scores."""
        value, *others = F.pixel_shuffle(self.filter(x), self.scale).split(self.channels, dim=1)
        return value, self.scores(others)


class ESRMax(OneLayerSR):
    """eSR-MAX: the output is the largest of C upscaling filters at each pixel."""

    def scores(self, others: list[torch.Tensor]) -> None:
        return None


class ESRTM(OneLayerSR):
    """eSR-TM: softmax over key responses weights the value (upscaling) filters."""

    def scores(self, others: list[torch.Tensor]) -> torch.Tensor:
        (key,) = others
        return key


class ESRTR(OneLayerSR):
    """eSR-TR: attention weights softmax(query * key) over the value filters."""

    def scores(self, others: list[torch.Tensor]) -> torch.Tensor:
        query, key = others
        return query * key


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

    def templates(self, x: torch.Tensor) -> Templates:
        """(values, scores) at HR size: the C candidates and key * key, their softmax scores."""
        value, key = self.filter(x).split(self.channels, dim=1)
        return value, key * key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, scores = self.templates(x)
        return (value * torch.softmax(scores, dim=1)).sum(dim=1, keepdim=True)


# --- family facts ------------------------------------------------------------------------------

def _filter_weights(model: OneLayerSR) -> tuple[np.ndarray, tuple[int, int]]:
    """The fused kernel's view of a one-layer model: its (F*s*s*C, K, K) filters, centred."""
    weight = model.filter.weight.detach().to(torch.float32)[:, 0].contiguous().numpy()
    k = model.kernel_size // 2
    return np.ascontiguousarray(weight), (k, k)


def _one_layer(module: type[OneLayerSR], name: str, mode: int, parts: tuple[str, ...],
               style: tuple[str, str]) -> Family:
    factor = ONE_LAYER_FACTORS[name]
    return Family(
        name, module,
        context=lambda spec: spec.K // 2,
        macs_per_pixel=lambda spec: factor * spec.scale**2 * spec.C * spec.K**2,
        # The F*s^2*C filter outputs and their pixel-shuffled copy, plus the reduction's temporaries.
        floats_per_pixel=lambda spec: 2 + (2 * factor + 2) * spec.scale**2 * spec.C,
        recipe="one_layer", style=style, pixel_training=True,
        kernel_mode=mode, kernel_weights=_filter_weights, parts=parts, templates=module.templates,
    )


ESR_MAX = _one_layer(ESRMax, "eSR-MAX", 0, ("value",), ("v", "#1f77b4"))
ESR_TM = _one_layer(ESRTM, "eSR-TM", 1, ("value", "key"), ("o", "#d62728"))
ESR_TR = _one_layer(ESRTR, "eSR-TR", 2, ("value", "query", "key"), ("s", "#2ca02c"))
ESR_CNN = Family(
    "eSR-CNN", ESRCNN,
    context=lambda spec: 2 + 1 + 1,  # 5x5, 3x3, 3x3
    macs_per_pixel=lambda spec: (25 * spec.D + 9 * spec.D * spec.S
                                 + 9 * spec.S * 2 * spec.scale**2 * spec.C),
    # Two consecutive feature maps of the widest layer, and the TM head's 2*s^2*C maps.
    floats_per_pixel=lambda spec: 2 + 2 * max(spec.D, spec.S) + 8 * spec.scale**2 * spec.C,
    recipe="esr_cnn", style=("^", "#9467bd"), bicubic_start=True, templates=ESRCNN.templates,
)
