"""MATLAB-compatible bicubic ``imresize``: the degradation that makes LR images from HR ones.

Super-resolution papers (edge-SR included) build their LR test and training images with
MATLAB's ``imresize(hr, 1/s, 'bicubic')``: Keys' cubic with a = -0.5, the kernel stretched by
1/scale when downscaling (antialiasing), pixel centres aligned (``align_corners=False``) and
symmetric (mirror, edge pixel repeated) extension at the borders. This module reproduces it in
float, without rounding, on numpy arrays and torch tensors.

Layouts: numpy arrays resize their first two axes, as MATLAB does ((H, W) or (H, W, C));
torch tensors resize their last two, as torch does ((..., H, W)). Values are float in, float out
(any range; no clipping). Integer inputs are converted to float64 (numpy) / float32 (torch).

``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` uses the same kernel but
renormalises the weights at the borders instead of mirroring, so the two agree everywhere except
within about 2*s pixels of the border when downscaling by s.

>>> import numpy as np
>>> imresize(np.array([[1.0, 2.0, 3.0, 4.0]]), 0.5)[0].round(4)   # MATLAB: 1.4609 3.5391
array([1.4609, 3.5391])
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (MATLAB's and Pillow's a = -0.5), float64."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    x2, x3 = x * x, x * x * x
    near = (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
    far = a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def contributions(in_length: int, out_length: int, scale: float,
                  antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: for each output sample, the input indices and their weights.

    Args:
        in_length, out_length: number of samples along the axis.
        scale: output/input ratio (< 1 downscales); MATLAB uses the requested factor, not
            out_length/in_length, when a factor was given.
        antialias: stretch the kernel by 1/scale when downscaling (MATLAB's default).
    Returns:
        indices (out_length, P) int64 into 0..in_length-1 (borders mirrored symmetrically) and
        weights (out_length, P) float64, each row summing to 1.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"imresize needs non-empty axes, got {in_length} -> {out_length}")
    width = 4.0
    if scale < 1.0 and antialias:
        kernel = lambda x: scale * cubic(scale * x)  # noqa: E731 - MATLAB's h(x)
        width = width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric extension: ... 2 1 | 1 2 ... n | n n-1 ... (1-based), as MATLAB's aux array.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    keep = np.any(weights != 0.0, axis=0)  # drop tap columns that are zero for every output
    return np.ascontiguousarray(indices[:, keep]), np.ascontiguousarray(weights[:, keep])


def output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a factor: ceil(scale * size) per axis (exact for 1/s factors)."""
    factor = Fraction(scale).limit_denominator(10_000)
    if abs(float(factor) - scale) > 1e-12:  # not a simple fraction: plain ceil
        return tuple(int(math.ceil(scale * n)) for n in in_size)  # type: ignore[return-value]
    return tuple(int(math.ceil(factor * n)) for n in in_size)  # type: ignore[return-value]


def _plan(in_size: tuple[int, int], scale: float | tuple[float, float] | None,
          size: tuple[int, int] | None) -> list[tuple[int, float]]:
    """(out_length, scale) for each of the two axes, from a factor or an output size."""
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale= or size=")
    if size is not None:
        out = (int(size[0]), int(size[1]))
        return [(out[i], out[i] / in_size[i]) for i in range(2)]
    if np.isscalar(scale):
        scales = (float(scale), float(scale))  # type: ignore[arg-type]
    else:
        scales = tuple(map(float, scale))  # type: ignore[arg-type]
    if min(scales) <= 0:
        raise ValueError(f"imresize scale must be positive, got {scale}")
    out = [output_size((in_size[i],), scales[i])[0] for i in range(2)]
    return [(out[i], scales[i]) for i in range(2)]


def imresize(image: np.ndarray | torch.Tensor, scale: float | tuple[float, float] | None = None,
             size: tuple[int, int] | None = None, antialias: bool = True) -> np.ndarray | torch.Tensor:
    """Bicubic resize exactly as MATLAB's ``imresize(image, scale)`` / ``imresize(image, size)``.

    Args:
        image: numpy (H, W) or (H, W, C), or torch (..., H, W); float (any range) or integer.
        scale: output/input factor, e.g. 1/3 to make a x3 LR image, 2 to upscale; one number or
            (rows, cols). The output has ceil(scale * H) x ceil(scale * W) samples.
        size: (out_H, out_W) instead of ``scale``.
        antialias: widen the kernel when downscaling (MATLAB's default ``'Antialiasing', true``).
    Returns:
        the resized image, same layout; numpy float64 or the input's torch float dtype.

    >>> imresize(np.ones((6, 9, 3)), 1 / 3).shape
    (2, 3, 3)
    >>> imresize(torch.ones(1, 3, 6, 9), 1 / 3).shape
    torch.Size([1, 3, 2, 3])
    """
    if isinstance(image, torch.Tensor):
        if image.ndim < 2:
            raise ValueError(f"imresize expects a (..., H, W) tensor, got {tuple(image.shape)}")
        x = image if image.is_floating_point() else image.float()
        axes = (x.ndim - 2, x.ndim - 1)
    else:
        x = np.asarray(image, dtype=np.float64)
        if x.ndim < 2:
            raise ValueError(f"imresize expects an (H, W) or (H, W, C) array, got {x.shape}")
        axes = (0, 1)
    in_size = (int(x.shape[axes[0]]), int(x.shape[axes[1]]))
    plan = _plan(in_size, scale, size)
    # MATLAB resizes the axis with the smaller factor first (less work); keep that order.
    order = sorted(range(2), key=lambda i: plan[i][1])
    for i in order:
        out_length, factor = plan[i]
        indices, weights = contributions(in_size[i], out_length, factor, antialias)
        x = _resize_axis(x, axes[i], indices, weights)
    return x


def _resize_axis(x, axis: int, indices: np.ndarray, weights: np.ndarray):  # noqa: ANN001, ANN202
    """Weighted sum of gathered samples along ``axis``: out[j] = sum_p w[j, p] x[idx[j, p]]."""
    out_length, taps = indices.shape
    if isinstance(x, torch.Tensor):
        moved = x.movedim(axis, -1)
        idx = torch.from_numpy(indices.reshape(-1)).to(x.device)
        w = torch.from_numpy(weights).to(device=x.device, dtype=x.dtype)
        gathered = moved.index_select(-1, idx).unflatten(-1, (out_length, taps))
        return (gathered * w).sum(-1).movedim(-1, axis)
    moved = np.moveaxis(x, axis, 0)
    gathered = np.take(moved, indices.reshape(-1), axis=0).reshape((out_length, taps) + moved.shape[1:])
    w = weights.reshape((out_length, taps) + (1,) * (moved.ndim - 1))
    return np.moveaxis((gathered * w).sum(axis=1), 0, axis)


def downscale(image: np.ndarray | torch.Tensor, factor: int,
              method: str = "matlab") -> np.ndarray | torch.Tensor:
    """Make an LR image: downscale by an integer ``factor`` with antialiased bicubic.

    Args:
        image: as `imresize` (numpy (H, W[, C]) or torch (..., H, W)), sides multiples of
            ``factor`` (mod-crop first).
        method: "matlab" (`imresize`, symmetric borders) or "torch"
            (``interpolate(mode="bicubic", antialias=True)``, renormalised borders).
    """
    if method == "matlab":
        return imresize(image, 1.0 / factor)
    if method != "torch":
        raise ValueError(f"unknown downscale method {method!r}; choose matlab or torch")
    is_numpy = not isinstance(image, torch.Tensor)
    if is_numpy:
        array = np.asarray(image, dtype=np.float64)
        tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, (0, 1), (-2, -1))))
    else:
        tensor = image if image.is_floating_point() else image.float()
    height, width = tensor.shape[-2:]
    flat = tensor.reshape(-1, 1, height, width)
    out = torch.nn.functional.interpolate(flat, size=(height // factor, width // factor),
                                          mode="bicubic", antialias=True, align_corners=False)
    out = out.reshape(tensor.shape[:-2] + out.shape[-2:])
    if is_numpy:
        return np.moveaxis(out.numpy(), (-2, -1), (0, 1))
    return out
