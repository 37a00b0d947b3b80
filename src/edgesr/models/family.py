"""`Family`: every fact edgesr needs about a model family, declared next to its definition.

Each family module (`classic`, `esr`, `baselines`) declares one `Family` per family it defines,
as timm keeps each model's configuration next to the model; `edgesr.models.registry.FAMILIES`
collects them. Code outside ``edgesr/models/`` asks the family (``family_of(spec).context(spec)``)
instead of branching on its name, so a new family is one module plus one line in the registry,
and ``tests/test_models.py`` walks every family through every fact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgesr.models.spec import ModelSpec

#: ``(values, scores)`` at HR size for an (N, 1, H, W) input: the C candidate outputs per pixel
#: and what the reduction weighs them by (softmax over channels), or None for a max.
Templates = tuple[torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True)
class Family:
    """What one family is and needs.

    Attributes:
        name: the family part of its ids (``eSR-TM``).
        module: the ``nn.Module`` class, built from a `ModelSpec`.
        context: LR pixels on each side that can influence an output pixel (finite support);
            padding a tile by this many real pixels makes tiling exact.
        macs_per_pixel: multiply-accumulates of the reference forward per LR input pixel
            (convolutions only; softmax, max and pixel shuffle are not counted).
        floats_per_pixel: float32 values live at the peak of one forward pass per LR pixel (an
            upper bound), which sizes tiles to a memory budget.
        recipe: key of `edgesr.train.RECIPES` that trains it; None: nothing to train (a fixed
            kernel that needs no weight file).
        pixel_training: trains on independent pixels (the module has ``forward_columns``).
        bicubic_start: `edgesr.warm_start.bicubic_start` can start its weights.
        full_width_tiles: must be tiled in full-width strips to stay bit-identical.
        kernel_mode: reduction code of the fused C kernel (0 max, 1 softmax(keys), 2
            softmax(queries * keys)); None: the kernel does not run the family.
        kernel_weights: model -> ((F*s*s*C, KH, KW) float32 filters, (top, left) zero padding)
            for the fused kernel.
        kernel_separable: the kernel may run the filters as separable passes.
        parts: names of the filter groups of a one-layer model, in channel order (explain's
            filter views); empty when there is no single filter layer.
        templates: model, (N, 1, H, W) input -> `Templates` (explain's template maps); None when
            the family has no per-pixel templates.
        style: (matplotlib marker, colour) of the family in plots.
    """

    name: str
    module: type[nn.Module]
    context: Callable[[ModelSpec], int]
    macs_per_pixel: Callable[[ModelSpec], int]
    floats_per_pixel: Callable[[ModelSpec], int]
    recipe: str | None
    style: tuple[str, str]
    pixel_training: bool = False
    bicubic_start: bool = False
    full_width_tiles: bool = False
    kernel_mode: int | None = None
    kernel_weights: Callable[[nn.Module], tuple[np.ndarray, tuple[int, int]]] | None = None
    kernel_separable: bool = False
    parts: tuple[str, ...] = ()
    templates: Callable[[nn.Module, torch.Tensor], Templates] | None = None

    @property
    def learned(self) -> bool:
        """Whether its weights are learned (else it is the fixed reference, e.g. bicubic)."""
        return self.recipe is not None
