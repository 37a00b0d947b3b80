"""A data-free starting point for the deep tanh/sigmoid families (ESPCN, eSR-CNN): bicubic.

Why: from Xavier weights, ESPCN training stalls near 29.6 dB on Set5 x2 (below bicubic's 33.7)
whatever the learning rate; the stalled networks have a wrong tone curve (a flat grey input of
0.3 comes out as 0.28), because the tanh and sigmoid layers must bend into an identity mapping
and plain gradient steps find that very slowly. `bicubic_start` builds that identity first:

1. Only the centre taps are set (seeded random), and fitted with L-BFGS so that the network maps
   every flat grey level x in [0, 1] to x at every output phase. On a 1 x 1 input, zero padding
   means only centre taps act, so this fits exactly the network's pointwise behaviour.
2. Each last-layer centre tap is spread over the bicubic polyphase filter of its output phase
   (truncated to the kernel, normalised to sum 1): flat areas keep their grey level and the
   network starts as "bicubic in the hidden layers' tone space".
3. The other taps of the earlier layers get small seeded zero-sum noise, so channels start
   different while flat areas stay exact.

Measured in ``benchmarks/train_recipe.md``: ESPCN_s2_D4_S6 reaches 35.25 dB on Set5 in 3000 steps
from here (the official weights: 33.85) where the Xavier start gives 29.6.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import EdgesrError
from edgesr.models import FAMILIES, family_of
from edgesr.resize import cubic

#: Families `bicubic_start` knows how to start (a conv stack ending in conv + PixelShuffle):
#: those whose `Family.bicubic_start` says so.
SUPPORTED = tuple(name for name, family in FAMILIES.items() if family.bicubic_start)


def bicubic_phase_filters(scale: int, taps: int, a: float = -0.5) -> torch.Tensor:
    """(s*s, taps, taps) bicubic interpolation filters per output phase, each summing to 1.

    Phase ``i*s + j`` (PixelShuffle order) is the HR pixel at (i, j) inside an LR pixel; its
    centre sits at (i + 1/2)/s - 1/2 LR pixels from the LR centre (``align_corners=False``).
    """
    offsets = np.arange(taps) - taps // 2
    rows = []
    for phase in range(scale):
        weights = cubic((phase + 0.5) / scale - 0.5 - offsets, a)
        rows.append(torch.from_numpy(weights / weights.sum()).float())
    return torch.stack([torch.outer(rows[i], rows[j]) for i in range(scale) for j in range(scale)])


def _convolutions(model: nn.Module) -> list[nn.Conv2d]:
    spec = getattr(model, "spec", None)
    if spec is None or not family_of(spec).bicubic_start:
        raise EdgesrError(f"bicubic start supports {', '.join(SUPPORTED)}, not {getattr(spec, 'family', None)}")
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def bicubic_start(model: nn.Module, seed: int = 0, noise: float = 0.1, iterations: int = 500) -> float:
    """Set ``model``'s weights in place to the bicubic start; returns the grey-level fit's RMSE.

    Args:
        model: an ESPCN or eSR-CNN from `edgesr.create_model`.
        seed: fixes the random centre taps and the noise.
        noise: std of the off-centre taps of the earlier layers, relative to Xavier's.
        iterations: L-BFGS iterations of the grey-level fit (about a second on a CPU).
    """
    convs = _convolutions(model)
    scale = model.spec.scale
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in convs:
            conv.weight.zero_()
            centre = conv.kernel_size[0] // 2
            conv.weight[:, :, centre, centre] = (torch.randn(conv.weight.shape[:2], generator=generator)
                                                 / math.sqrt(conv.in_channels))
            if conv.bias is not None:
                conv.bias.zero_()

    grey = torch.linspace(0.0, 1.0, 257)[:, None, None, None]
    target = grey.expand(-1, 1, scale, scale)
    parameters = [p for conv in convs for p in conv.parameters()]
    optimiser = torch.optim.LBFGS(parameters, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        penalty = 1e-6 * sum((conv.weight**2).sum() for conv in convs)  # keeps the weights moderate
        loss = F.mse_loss(model(grey), target) + penalty
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    with torch.no_grad():
        rmse = F.mse_loss(model(grey), target).sqrt().item()
        last = convs[-1]
        centre = last.kernel_size[0] // 2
        phases = bicubic_phase_filters(scale, last.kernel_size[0])
        phase_of_channel = torch.arange(last.out_channels) % (scale * scale)
        last.weight.copy_(last.weight[:, :, centre:centre + 1, centre:centre + 1]
                          * phases[phase_of_channel][:, None])
        for conv in convs[:-1]:
            centre = conv.kernel_size[0] // 2
            xavier = math.sqrt(2.0 / ((conv.in_channels + conv.out_channels) * conv.kernel_size[0] ** 2))
            jitter = torch.randn(conv.weight.shape, generator=generator) * xavier * noise
            off_centre = torch.ones_like(jitter)
            off_centre[:, :, centre, centre] = 0
            jitter *= off_centre
            jitter -= off_centre * jitter.sum(dim=(2, 3), keepdim=True) / off_centre[0, 0].sum()
            conv.weight.add_(jitter)  # sums to zero per filter: flat greys still come out unchanged
    return rmse
