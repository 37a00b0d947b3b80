"""Image quality metrics as SR papers report them: PSNR, SSIM (MATLAB reference), optional LPIPS.

All of PSNR and SSIM is computed in float64 numpy on single-channel images, normally
BT.601 studio-range luma Y (16..235) with ``peak = 255``, after shaving ``shave`` pixels at every
border (shave = scale, as the paper does).

SSIM follows Wang et al.'s MATLAB ``ssim_index``: an 11x11 Gaussian window with sigma 1.5,
K1 = 0.01, K2 = 0.03, L = peak, population (co)variances, only the window positions fully inside
the image ('valid'), and the mean of the SSIM map. This is what
``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`` returns.

LPIPS needs the optional ``lpips`` package *and* its backbone weights already on disk; edgesr
never downloads them at run time. `lpips_metric` says why it is unavailable instead of failing.

>>> y = np.full((32, 32), 100.0)
>>> round(psnr(y, y + 1.0), 4)      # MSE 1 -> 10 log10(255^2)
48.1308
>>> ssim(y, y)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WINDOW_SIZE = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps (size,), float64; the 2-D window is their outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


_TAPS = gaussian_window()


def _as_plane(image: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a single-channel (H, W) image, got shape {array.shape}")
    return array


def shave_border(image: np.ndarray, shave: int) -> np.ndarray:
    """Drop ``shave`` pixels at every border of an (H, W) image (0 keeps it whole)."""
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    if shave == 0:
        return image
    if min(image.shape[:2]) <= 2 * shave:
        raise ValueError(f"image of shape {image.shape[:2]} is too small to shave {shave} pixels")
    return image[shave:-shave, shave:-shave]


def _pair(a: np.ndarray, b: np.ndarray, shave: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_plane(a, "a"), _as_plane(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return shave_border(a, shave), shave_border(b, shave)


def psnr(a: np.ndarray, b: np.ndarray, shave: int = 0, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of two (H, W) images; ``inf`` when they are equal."""
    a, b = _pair(a, b, shave)
    return _psnr_from_mse(float(np.mean((a - b) ** 2)), peak)


def _psnr_from_mse(mse: float, peak: float) -> float:
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def gaussian_filter_valid(image: np.ndarray, taps: np.ndarray = _TAPS) -> np.ndarray:
    """Separable correlation with ``outer(taps, taps)`` over the 'valid' positions only.

    (H, W) -> (H - n + 1, W - n + 1) float64, like MATLAB's ``filter2(window, image, 'valid')``.
    """
    n = taps.shape[0]
    if min(image.shape) < n:
        raise ValueError(f"SSIM needs images of at least {n}x{n} pixels, got {image.shape}")
    rows = sliding_window_view(image, n, axis=1) @ taps
    return sliding_window_view(rows, n, axis=0) @ taps


def ssim(a: np.ndarray, b: np.ndarray, shave: int = 0, peak: float = 255.0) -> float:
    """Mean SSIM of two (H, W) images, MATLAB reference (Gaussian 11x11, sigma 1.5); in [-1, 1]."""
    a, b = _pair(a, b, shave)
    return SSIMTarget(b, peak).score(a)


class SSIMTarget:
    """SSIM against a fixed reference image, with the reference's local statistics cached.

    Evaluating many models on one benchmark image recomputes only the statistics that involve
    the model's output (3 filtered maps instead of 5).
    """

    def __init__(self, reference: np.ndarray, peak: float = 255.0) -> None:
        self.reference = _as_plane(reference, "reference")
        self.c1, self.c2 = (K1 * peak) ** 2, (K2 * peak) ** 2
        self.mu = gaussian_filter_valid(self.reference)
        self.mu_sq = self.mu * self.mu
        self.var = gaussian_filter_valid(self.reference * self.reference) - self.mu_sq

    def score(self, image: np.ndarray) -> float:
        """Mean SSIM of ``image`` (same shape as the reference) against the reference."""
        x = _as_plane(image, "image")
        if x.shape != self.reference.shape:
            raise ValueError(f"images differ in shape: {x.shape} vs {self.reference.shape}")
        mu_x = gaussian_filter_valid(x)
        mu_xy = mu_x * self.mu
        mu_x_sq = mu_x * mu_x
        var_x = gaussian_filter_valid(x * x) - mu_x_sq
        cov = gaussian_filter_valid(x * self.reference) - mu_xy
        numerator = (2.0 * mu_xy + self.c1) * (2.0 * cov + self.c2)
        denominator = (mu_x_sq + self.mu_sq + self.c1) * (var_x + self.var + self.c2)
        return float(np.mean(numerator / denominator))


class LumaTarget:
    """A benchmark HR luma plane, ready to score SR outputs by PSNR and SSIM with a shave.

    Args:
        hr_y: (H, W) HR luma, studio range (16..235) float.
        shave: border pixels ignored on each side (the scale factor in the paper's protocol).
        peak: PSNR peak and SSIM's L (255 for 0..255 luma).
    """

    def __init__(self, hr_y: np.ndarray, shave: int, peak: float = 255.0) -> None:
        self.full_shape = _as_plane(hr_y, "hr_y").shape
        self.shave, self.peak = shave, peak
        self.hr = np.ascontiguousarray(shave_border(_as_plane(hr_y, "hr_y"), shave))
        self._ssim = SSIMTarget(self.hr, peak)

    def score(self, sr_y: np.ndarray) -> tuple[float, float]:
        """(PSNR dB, SSIM) of an (H, W) SR luma plane of the HR's full (unshaved) shape."""
        sr = _as_plane(sr_y, "sr_y")
        if sr.shape != self.full_shape:
            raise ValueError(f"SR output of shape {sr.shape} does not match HR shape {self.full_shape}")
        sr = shave_border(sr, self.shave)
        mse = float(np.mean((sr - self.hr) ** 2))
        return _psnr_from_mse(mse, self.peak), self._ssim.score(sr)


def luma_metrics(sr_y: np.ndarray, hr_y: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of SR vs HR studio-range luma (0..255 scale) with shave = ``scale``."""
    return LumaTarget(hr_y, scale).score(sr_y)


# --- LPIPS (optional) -------------------------------------------------------------------------

#: torchvision backbone checkpoints the ``lpips`` package loads through ``torch.hub``.
LPIPS_BACKBONES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def lpips_metric(net: str = "alex") -> tuple[Callable[[np.ndarray, np.ndarray], float] | None, str]:
    """An LPIPS distance function, or ``(None, reason)`` when it cannot run without downloading.

    Returns:
        ``(fn, "")`` where ``fn(a, b)`` takes two (H, W, 3) RGB images in 0..255 (float or uint8)
        and returns the LPIPS distance (lower is more similar); or ``(None, reason)`` naming what
        is missing (the ``lpips`` package, its linear-layer weights, or the backbone checkpoint
        in torch's hub cache, which edgesr never fetches).
    """
    if net not in LPIPS_BACKBONES:
        return None, f"LPIPS skipped: unknown network {net!r} (choose {', '.join(LPIPS_BACKBONES)})"
    try:
        import lpips  # type: ignore[import-not-found]
    except ImportError:
        return None, "LPIPS skipped: the optional package is not installed (pip install 'edgesr[lpips]')"
    import torch

    linear = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    if not linear.is_file():
        return None, f"LPIPS skipped: its linear-layer weights are missing ({linear})"
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONES[net]
    if not backbone.is_file():
        return None, (f"LPIPS skipped: backbone weights {backbone} are not on disk"
                      " (edgesr does not download them; place the torchvision checkpoint there)")
    try:
        model = lpips.LPIPS(net=net, verbose=False).eval()
    except Exception as error:  # noqa: BLE001 - any failure to build means "skip, with the reason"
        return None, f"LPIPS skipped: could not load the {net} network ({error})"

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        def to_tensor(image: np.ndarray) -> torch.Tensor:
            array = np.asarray(image, dtype=np.float32)
            if array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"LPIPS expects (H, W, 3) RGB images, got {array.shape}")
            return torch.from_numpy(array / 127.5 - 1.0).permute(2, 0, 1)[None]

        with torch.inference_mode():
            return float(model(to_tensor(a), to_tensor(b)).item())

    return distance, ""
