"""Models with seeded random weights for tests that compare two ways of running them."""

from __future__ import annotations

import torch

from edgesr.models import create_model


def noisy_model(model_id: str, noise: float) -> torch.nn.Module:
    """A fresh init plus ``noise`` x N(0, 1) on every trainable weight (seed 0), so that no weight
    is special and a dropped or reordered layer cannot match by luck; fixed kernels (Bicubic)
    stay exact."""
    torch.manual_seed(0)
    model = create_model(model_id)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(noise * torch.randn_like(parameter))
    return model.eval()
