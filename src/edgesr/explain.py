"""What an edge-SR model learned, as arrays: its filters, their spectra and directions, and
where each template wins on an image (the paper's interpretability views; `edgesr.explain_views`
draws them).

One-layer models hold one K x K convolution with F*s*s*C output channels. After PixelShuffle,
channel ``(f*C + c)*s*s + phase`` is filter ``c`` of part ``f`` at sub-pixel phase
``phase = i*s + j`` (output pixel (i, j) of each s x s block). Parts (`Family.parts`): eSR-MAX
[value], eSR-TM [value | key], eSR-TR [value | query | key]. Value filters upscale
(interpolate); key/query filters score which template fits a neighbourhood (matching).
eSR-CNN has the TM head (softmax of key^2) after deep layers: it has template maps
(`Family.templates`) but no single K x K filters.

>>> views = filter_bank(create_model("eSR-TM_s2_K3_C4"))          # doctest: +SKIP
>>> views["key"].shape                                              # (C, s*s, K, K)
(4, 4, 3, 3)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgesr.errors import EdgesrError
from edgesr.imaging import luma_to_model, model_to_luma, read_pixels, rgb_to_luma
from edgesr.models import ModelSpec, family_of

SPECTRUM_SIZE = 32


# --- filters -----------------------------------------------------------------------------------

def filter_bank(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's K x K filters per part: ``{part: (C, s*s, K, K) float64}``.

    Raises `EdgesrError` for families without a single filter layer (eSR-CNN, ESPCN, ...).
    """
    spec: ModelSpec = model.spec
    parts = family_of(spec).parts
    if not parts:
        raise EdgesrError(f"{spec.id}: filter views exist for one-layer models (eSR-MAX, eSR-TM, eSR-TR) only")
    weight = model.filter.weight.detach().double().cpu().numpy()[:, 0]  # (F*C*s*s, K, K)
    s, c, k = spec.scale, spec.C, spec.K
    grouped = weight.reshape(len(parts), c, s * s, k, k)
    return {name: grouped[f] for f, name in enumerate(parts)}


def frequency_response(filters: np.ndarray, size: int = SPECTRUM_SIZE) -> np.ndarray:
    """|FFT2| of (..., K, K) filters zero-padded to (size, size), DC shifted to the centre."""
    if filters.shape[-1] > size:
        raise EdgesrError(f"filters of {filters.shape[-1]} taps do not fit a {size}-point spectrum")
    return np.abs(np.fft.fftshift(np.fft.fft2(filters, s=(size, size)), axes=(-2, -1)))


def orientation(filters: np.ndarray, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Dominant direction of (..., K, K) filters -> (edge orientation in degrees 0..180, anisotropy 0..1).

    The grating a filter (mean removed: DC says nothing about direction) passes most strongly
    is the peak of its zero-padded spectrum; the edges that make that grating lie across its
    frequency vector, so the edge orientation is the frequency's angle + 90 degrees (x to the
    right, y up: 0 = horizontal edges, 90 = vertical). Anisotropy is 1 - |H| of the same grating
    turned by 90 degrees / |H| at the peak: 1 for a pure edge detector, 0 without a preference.
    """
    centred = filters - filters.mean(axis=(-2, -1), keepdims=True)
    spectrum = np.abs(np.fft.fft2(centred, s=(size, size)))
    flat = spectrum.reshape(*spectrum.shape[:-2], size * size)
    peak_index = flat.argmax(axis=-1)
    rows, cols = np.divmod(peak_index, size)
    frequency = np.fft.fftfreq(size)
    fx, fy = frequency[cols], -frequency[rows]  # rows grow downwards; y up
    edge = np.mod(np.degrees(np.arctan2(fy, fx)) + 90.0, 180.0)
    # (fx, fy) turned by 90 degrees is (-fy, fx): column index = row index, row index = -column.
    turned = np.take_along_axis(flat, (np.mod(-cols, size) * size + rows)[..., None], axis=-1)[..., 0]
    peak = np.take_along_axis(flat, peak_index[..., None], axis=-1)[..., 0]
    anisotropy = np.where(peak > 1e-12, 1.0 - turned / np.where(peak > 1e-12, peak, 1.0), 0.0)
    return edge, anisotropy


# --- template maps on an image ------------------------------------------------------------------

@dataclass
class TemplateMaps:
    """Per-pixel template weights of a model on one LR luma plane (all at HR size).

    Attributes:
        reduction: "max" (the largest response wins, eSR-MAX) or "softmax".
        weights: (C, sH, sW) softmax weights (sum 1 per pixel); eSR-MAX: one-hot of the winner.
        winner: (sH, sW) int index of the winning template.
        confidence: (sH, sW) the winning weight (1/C..1); eSR-MAX: margin of the two largest
            responses (model units, 0..).
        output: (sH, sW) model output luma, studio range 16..235.
    """

    reduction: str
    weights: np.ndarray
    winner: np.ndarray
    confidence: np.ndarray
    output: np.ndarray


@torch.inference_mode()
def template_maps(model: torch.nn.Module, lr_luma: np.ndarray) -> TemplateMaps:
    """Run ``model`` on studio-range LR luma (H, W) and return its per-pixel template weights."""
    spec: ModelSpec = model.spec
    templates = family_of(spec).templates
    if templates is None:
        raise EdgesrError(f"{spec.id}: template maps exist for eSR-MAX, eSR-TM, eSR-TR and eSR-CNN")
    x = torch.from_numpy(np.ascontiguousarray(luma_to_model(lr_luma), dtype=np.float32))[None, None]
    model = model.float().eval()
    c = spec.C
    value, scores = templates(model, x)
    if scores is None:  # eSR-MAX: the largest response wins
        top = value.topk(min(2, c), dim=1).values
        winner = value.argmax(dim=1)[0]
        weights = F.one_hot(winner, c).permute(2, 0, 1).double()
        confidence = (top[0, 0] - top[0, 1]) if c > 1 else torch.zeros_like(top[0, 0])
    else:
        soft = torch.softmax(scores, dim=1)[0]
        weights = soft.double()
        confidence, winner = soft.max(dim=0)
    output = model_to_luma(model(x)[0, 0].double().numpy())
    return TemplateMaps("max" if scores is None else "softmax", weights.numpy(), winner.numpy(),
                        confidence.double().numpy(), output)


def siemens_star(size: int = 128, spokes: int = 24) -> np.ndarray:
    """A test image with edges at every orientation: (size, size) studio-range luma 16..235."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    angle = np.arctan2(yy, xx)
    radius = np.hypot(yy, xx) / (size / 2.0)
    star = 0.5 + 0.5 * np.sign(np.sin(spokes / 2 * angle))
    star = np.where(radius < 0.12, 0.5, star)
    star = np.where(radius > 0.95, 0.25 + 0.5 * (xx > 0), star)
    return 16.0 + 219.0 * star


def image_luma(path: str | os.PathLike, max_side: int = 384) -> np.ndarray:
    """An image file as studio-range luma (H, W), centre-cropped to ``max_side`` pixels a side."""
    y = rgb_to_luma(read_pixels(Path(path)))
    h, w = y.shape
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return y[top:top + max_side, left:left + max_side]


# --- rendering (numpy + Pillow only) -----------------------------------------------------------
