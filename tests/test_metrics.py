"""edgesr.metrics: PSNR, SSIM as MATLAB's ssim_index, LPIPS only when available locally."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgesr.metrics import LumaTarget, gaussian_window, lpips_metric, luma_metrics, psnr, ssim


def _noisy_pair(seed: int = 0, shape=(40, 50)):
    rng = np.random.default_rng(seed)
    a = rng.uniform(16, 235, size=shape)
    return a, np.clip(a + rng.normal(0, 8, size=shape), 0, 255)


def test_identical_images_give_infinite_psnr_and_ssim_one():
    a, _ = _noisy_pair()
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == 1.0


def test_constant_offset_gives_the_hand_computed_psnr():
    a = np.full((20, 20), 100.0)
    assert psnr(a, a + 5.0) == pytest.approx(10 * math.log10(255**2 / 25.0), abs=1e-12)
    assert psnr(a, a + 5.0, peak=1.0) == pytest.approx(10 * math.log10(1 / 25.0), abs=1e-12)


def test_shave_ignores_differences_at_the_border():
    a = np.full((20, 20), 100.0)
    b = a.copy()
    b[:2, :] = 0.0
    b[:, -2:] = 0.0
    assert psnr(a, b, shave=2) == math.inf
    assert psnr(a, b, shave=1) < 20.0


def test_ssim_equals_a_direct_windowed_computation():
    # Independent form: for each valid 11x11 window, Gaussian-weighted means, population
    # (co)variances and the SSIM formula; then the mean over the windows.
    a, b = _noisy_pair(1, shape=(14, 13))
    g = gaussian_window()
    w = np.outer(g, g)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(14 - 10):
        for j in range(13 - 10):
            x, y = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mx, my = (w * x).sum(), (w * y).sum()
            vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
            cxy = (w * (x - mx) * (y - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    assert ssim(a, b) == pytest.approx(np.mean(values), abs=1e-12)


def test_ssim_matches_scikit_image_gaussian_population_variant():
    metrics = pytest.importorskip("skimage.metrics")
    a, b = _noisy_pair(2)
    expected = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=255)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)


def test_ssim_window_is_11_taps_sigma_1_5():
    g = gaussian_window()
    assert g.shape == (11,)
    assert g.sum() == pytest.approx(1.0)
    assert g[5] / g[6] == pytest.approx(math.exp(0.5 / 1.5**2))


def test_luma_metrics_shave_the_scale():
    a, b = _noisy_pair(3)
    assert luma_metrics(b, a, 3) == (pytest.approx(psnr(b, a, shave=3)), pytest.approx(ssim(b, a, shave=3)))


def test_luma_target_rejects_a_wrong_shape():
    target = LumaTarget(np.zeros((30, 30)), shave=2)
    with pytest.raises(ValueError, match="does not match"):
        target.score(np.zeros((30, 28)))


def test_ssim_needs_an_image_at_least_as_large_as_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 20)), np.zeros((10, 20)))


def test_lpips_without_package_or_weights_is_skipped_with_a_reason():
    fn, reason = lpips_metric("alex")
    try:
        import lpips  # noqa: F401
    except ImportError:
        assert fn is None
        assert "not installed" in reason
        return
    if fn is None:  # installed, but weights not on disk: the reason names what is missing
        assert "LPIPS skipped" in reason
    else:
        a = np.random.default_rng(0).uniform(0, 255, (32, 32, 3))
        assert fn(a, a) == pytest.approx(0.0, abs=1e-6)


def test_lpips_unknown_network_is_a_reason_not_a_crash():
    fn, reason = lpips_metric("resnet")
    assert fn is None and "unknown network" in reason
