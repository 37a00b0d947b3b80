"""Image files (8/16-bit, gray/RGB/RGBA), bad files, and BT.601 colour conversion."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgesr import EdgesrError
from edgesr.imaging import (luma_to_model, mod_crop, model_to_luma, read_image, rgb_to_luma, rgb_to_ycbcr,
                            write_image, ycbcr_to_rgb)

rng = np.random.default_rng(0)


@pytest.mark.parametrize("shape,dtype", [((5, 7), np.uint8), ((5, 7, 3), np.uint8), ((5, 7, 4), np.uint8),
                                         ((5, 7), np.uint16), ((5, 7, 3), np.uint16), ((5, 7, 4), np.uint16)])
def test_png_round_trip_keeps_depth_and_channels(tmp_path, shape, dtype):
    array = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    write_image(tmp_path / "x.png", array)
    back = read_image(tmp_path / "x.png")
    assert back.dtype == dtype and np.array_equal(back, array)


def test_palette_image_reads_as_rgb(tmp_path):
    Image.new("P", (4, 3), color=1).save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (3, 4, 3)


def test_zero_byte_file_is_named_in_the_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(EdgesrError, match=r"empty\.png: empty file"):
        read_image(tmp_path / "empty.png")


def test_truncated_png_is_reported(tmp_path):
    write_image(tmp_path / "full.png", rng.integers(0, 255, (64, 64, 3)).astype(np.uint8))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgesrError, match=r"cut\.png: damaged or truncated"):
        read_image(tmp_path / "cut.png")


def test_non_image_is_reported(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(EdgesrError, match=r"notes\.png: not an image"):
        read_image(tmp_path / "notes.png")


def test_decompression_bomb_is_refused(tmp_path):
    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    with pytest.raises(EdgesrError, match=r"big\.png: .*decompression bomb"):
        read_image(tmp_path / "big.png", max_pixels=10_000)


def test_white_and_black_map_to_studio_range():
    ycbcr = rgb_to_ycbcr(np.array([[255.0, 255, 255], [0, 0, 0]]))
    np.testing.assert_allclose(ycbcr, [[235, 128, 128], [16, 128, 128]], atol=1e-9)


def test_ycbcr_round_trip_is_exact_in_float():
    rgb = rng.random((6, 5, 3)) * 255
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-9)


def test_gray_image_is_its_own_luma():
    gray = np.array([[0.0, 128.0, 255.0]])
    np.testing.assert_allclose(rgb_to_luma(gray), rgb_to_luma(np.repeat(gray[..., None], 3, -1)))
    np.testing.assert_allclose(luma_to_model(rgb_to_luma(gray)), gray / 255)


def test_model_output_maps_back_clipped_to_studio_range():
    np.testing.assert_allclose(model_to_luma(np.array([-0.5, 0.0, 0.5, 1.0, 1.5])),
                               [16, 16, 16 + 109.5, 235, 235])


def test_mod_crop_keeps_the_top_left():
    image = np.arange(7 * 5).reshape(7, 5)
    assert np.array_equal(mod_crop(image, 3), image[:6, :3])


def test_read_pixels_gives_0_to_255_floats_without_alpha_for_any_depth(tmp_path):
    from edgesr.imaging import read_pixels

    rgba16 = np.zeros((2, 3, 4), np.uint16)
    rgba16[..., 0] = 65535
    write_image(tmp_path / "a.png", rgba16)
    pixels = read_pixels(tmp_path / "a.png")
    assert pixels.shape == (2, 3, 3) and pixels.dtype == np.float64
    np.testing.assert_allclose(pixels[..., 0], 255.0)


def test_png_level_changes_size_not_pixels(tmp_path):
    yy, xx = np.mgrid[:64, :96]
    image = np.stack([(xx * 2) % 256, (yy * 3) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    fast = write_image(tmp_path / "fast.png", image)
    small = write_image(tmp_path / "small.png", image, png_level=9)
    assert np.array_equal(read_image(fast), image) and np.array_equal(read_image(small), image)
    assert small.stat().st_size <= fast.stat().st_size
    with pytest.raises(EdgesrError, match="bad.png: PNG compression level must be 0-9"):
        write_image(tmp_path / "bad.png", image, png_level=12)
    assert not (tmp_path / "bad.png").exists()
