"""Bicubic upscaling written as one convolution followed by a pixel shuffle.

Classic "upsample then filter" inserts s-1 zeros between LR pixels and filters the result with
the bicubic kernel: a transposed convolution of stride s. Most of its multiplications hit the
inserted zeros. Splitting the kernel into its s*s polyphase components gives the same output
from one small convolution on the LR image (s*s output channels) and a PixelShuffle, which is
what edge-SR generalises with learned filters.

Geometry (shared with the official ``Bicubic_s#.model`` files): a (4s+3)-tap kernel, transposed
convolution padding ``p = (3s+4)//2`` and output padding ``2p-3s-3``, so an H x W input gives
exactly sH x sW. Borders: outside the image the input is taken as zero, exactly as the official
transposed convolution does, so the outermost ~2 LR pixels lose brightness. `edgesr.Upscaler`
pads the input by edge replication first, which makes the result equal to standard bicubic
upsampling (clamped borders) everywhere.

Note on the official odd-scale file: ``Bicubic_s3.model`` samples its kernel half an HR pixel
off the standard grid (its taps sit at distances (k+1/2)/3), so loading it reproduces the
paper's Bicubic_s3 numbers, while `bicubic_kernel` gives the correctly aligned filter.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgesr.models.family import Family
from edgesr.models.spec import ModelSpec
from edgesr.resize import cubic  # Keys' kernel: a = -0.5 is MATLAB/Pillow, a = -0.75 OpenCV/PyTorch


def transposed_geometry(scale: int) -> tuple[int, int, int]:
    """(kernel size, padding, output padding) of the stride-s transposed convolution."""
    size = 4 * scale + 3
    padding = (3 * scale + 4) // 2
    return size, padding, 2 * padding - 3 * scale - 3


def bicubic_kernel(scale: int, a: float = -0.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The (4s+3, 4s+3) 2-D bicubic interpolation kernel for upscaling by ``scale``.

    Tap j sits at LR distance (j - c)/s from the output pixel with c = p - 1/2 + s/2, which puts
    HR pixel centres at (y + 1/2)/s - 1/2 (the ``align_corners=False`` convention).
    """
    size, padding, _ = transposed_geometry(scale)
    centre = padding - 0.5 + scale / 2
    taps = torch.from_numpy(cubic((np.arange(size) - centre) / scale, a))
    return torch.outer(taps, taps).to(dtype)


def polyphase_weights(kernel: torch.Tensor, scale: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split a transposed-conv kernel into s*s conv filters for ``conv2d`` + ``pixel_shuffle``.

    Args:
        kernel: (L, L) kernel of the stride-s transposed convolution (geometry as above).
    Returns:
        weights (s*s, 1, T, T) in PixelShuffle channel order (row phase major) and the
        (before, after) zero padding to apply on each spatial side of the LR input.
    """
    size, padding, _ = transposed_geometry(scale)
    if kernel.shape != (size, size):
        raise ValueError(f"expected a ({size}, {size}) kernel for scale {scale}, got {tuple(kernel.shape)}")
    # Output row s*x0 + r takes input row x0 - m through tap s*m + r + p.
    m_min = min(math.ceil(-(r + padding) / scale) for r in range(scale))
    m_max = max((size - 1 - r - padding) // scale for r in range(scale))
    taps = m_max - m_min + 1
    index = torch.full((scale, taps), -1, dtype=torch.long)
    for r in range(scale):
        for t in range(taps):
            j = scale * (m_max - t) + r + padding
            if 0 <= j < size:
                index[r, t] = j
    padded = F.pad(kernel, (0, 1, 0, 1))  # index -1 reads this zero row/column
    phases = padded[index[:, None, :, None], index[None, :, None, :]]  # (s, s, T, T)
    return phases.reshape(scale * scale, 1, taps, taps), (m_max, -m_min)


class Bicubic(nn.Module):
    """Bicubic upscaling as conv + PixelShuffle; state dict ``net.weight`` as the official files.

    Input (N, 1, H, W) float, output (N, 1, sH, sW); values pass through linearly (no clipping).

    >>> model = Bicubic(ModelSpec.parse("Bicubic_s2"))
    >>> model(torch.ones(1, 1, 8, 8))[0, 0, 6:10, 6:10].allclose(torch.ones(4, 4))
    True
    """

    def __init__(self, spec: ModelSpec, a: float = -0.5) -> None:
        super().__init__()
        self.scale = spec.scale
        size, padding, output_padding = transposed_geometry(spec.scale)
        self.padding, self.output_padding = padding, output_padding
        # A ConvTranspose2d so that official files load strictly; forward never runs it.
        self.net = nn.ConvTranspose2d(1, 1, size, stride=spec.scale, padding=padding,
                                      output_padding=output_padding, bias=False)
        self.net.weight.requires_grad_(False)
        with torch.no_grad():
            self.net.weight.copy_(bicubic_kernel(spec.scale, a)[None, None])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # The official files store the kernel in float16; keep our parameter's dtype.
        key = prefix + "net.weight"
        if key in state_dict:
            state_dict[key] = state_dict[key].to(self.net.weight.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, (before, after) = polyphase_weights(self.net.weight[0, 0], self.scale)
        x = F.pad(x, (before, after, before, after))
        return F.pixel_shuffle(F.conv2d(x, weight.to(x.dtype)), self.scale)

    def upsample_then_filter(self, x: torch.Tensor) -> torch.Tensor:
        """The textbook form (zero insertion + filtering) that `forward` must equal."""
        return F.conv_transpose2d(x, self.net.weight.to(x.dtype), stride=self.scale,
                                  padding=self.padding, output_padding=self.output_padding)


# --- family facts ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _support(scale: int) -> tuple[int, int]:
    """(before, after) LR pixels the polyphase filters reach on each side (cached: every
    `Upscaler.upscale` call asks, through the tiling decision, and computing it took 0.15 ms)."""
    return polyphase_weights(bicubic_kernel(scale), scale)[1]


def _kernel_weights(model: Bicubic) -> tuple[np.ndarray, tuple[int, int]]:
    """The fused kernel's view: the s*s phase filters without their all-zero border taps
    (s=2: 6x6 -> 5x5), and the padding shifted to match."""
    s = model.scale
    weight, (before, _) = polyphase_weights(model.net.weight.detach()[0, 0].float(), s)
    weight = weight[:, 0].numpy().astype(np.float32)
    rows = np.flatnonzero(np.any(weight != 0, axis=(0, 2)))
    cols = np.flatnonzero(np.any(weight != 0, axis=(0, 1)))
    if rows.size == 0:
        rows = cols = np.array([before])
    weight = np.ascontiguousarray(weight[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    return weight, (before - int(rows[0]), before - int(cols[0]))


def _macs(spec: ModelSpec) -> int:
    weight, _ = polyphase_weights(bicubic_kernel(spec.scale), spec.scale)
    return weight.shape[0] * weight.shape[-1] * weight.shape[-2]  # s*s phases of T x T taps


BICUBIC = Family(
    "Bicubic", Bicubic,
    context=lambda spec: max(_support(spec.scale)),
    macs_per_pixel=_macs,
    floats_per_pixel=lambda spec: 2 + 2 * spec.scale**2,
    recipe=None, style=("*", "#000000"),
    kernel_mode=0,  # max over one channel: a copy
    kernel_weights=_kernel_weights, kernel_separable=True,
)
