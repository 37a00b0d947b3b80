"""Image files and colour: read/write 8- and 16-bit images, BT.601 YCbCr, the model's luma scale.

Value ranges at each boundary:

* files <-> arrays: ``uint8`` (0..255) or ``uint16`` (0..65535), shape (H, W), (H, W, 3) or
  (H, W, 4); 16-bit colour PNGs go through pypng because Pillow reduces them to 8 bits.
* colour maths: float RGB in 0..255 (whatever the file depth) <-> YCbCr, BT.601 studio range:
  Y in 16..235, Cb/Cr in 16..240.
* models: ``(Y - 16) / 219``, i.e. studio-range luma mapped to 0..1 (how the official weights
  were trained); outputs map back as ``16 + 219 * clip(o, 0, 1)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from edgesr.atomic import atomic_path
from edgesr.errors import EdgesrError, log

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: Largest image (in pixels) read by default; Pillow's decompression-bomb guard uses it.
MAX_PIXELS = 16384 * 16384

# BT.601 studio-range matrix for RGB in 0..255: YCbCr = offset + M @ RGB / 255.
RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
) / 255.0
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
#: Studio-range luma as the models see it: Y = LUMA_BLACK + LUMA_RANGE * (model value in 0..1).
LUMA_BLACK, LUMA_RANGE = 16.0, 219.0
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the file name has an image extension edgesr reads and writes."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image as uint8/uint16 (H, W), (H, W, 3) or (H, W, 4); palettes become RGB(A).

    Float TIFFs in 0..1 become uint16 (0..65535); other float ranges are refused. Raises
    `EdgesrError` naming the file for missing, empty, damaged, unreadable or oversized (more
    than ``max_pixels`` pixels: decompression bomb guard) files, whatever the decoder raised.
    Decoder warnings become one WARNING line on the ``edgesr`` logger naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise EdgesrError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise EdgesrError(f"{path}: empty file (0 bytes)")
    with _warnings_to_list() as caught:
        try:
            array = _decode(path, max_pixels)
        except EdgesrError:
            raise
        except Exception as error:  # noqa: BLE001 - decoders raise anything (TypeError, png.ChunkError, ...)
            raise EdgesrError(f"{path}: {_decoder_message(error)}") from error
    if caught:
        more = f" (and {len(caught) - 1} more warnings)" if len(caught) > 1 else ""
        log.warning("%s: %s%s", path, caught[0], more)
    return array


def _decode(path: Path, max_pixels: int) -> np.ndarray:
    with _open_checked(path, max_pixels) as image:
        if image.format == "PNG" and image.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16:
            return _read_png16(path)
        image.load()
        return _to_array(image)


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open (headers only) with Pillow's bomb guard at ``max_pixels``; refuse larger images.

    Pillow's limit is a process-wide setting: it is set and restored under a lock, around the
    cheap header read only, so concurrent readers with other limits do not see each other's.
    """
    with _PILLOW_LIMIT_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow warns above it (ignored: checked below), fails above 2x
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    if image.width * image.height > max_pixels:
        image.close()
        raise EdgesrError(f"{path}: image of {image.width}x{image.height} exceeds the limit of"
                          f" {max_pixels} pixels (decompression bomb guard; raise --max-pixels)")
    return image


def _decoder_message(error: Exception) -> str:
    """What a decoder's exception means for the user, in one line."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image file edgesr can read"
    if isinstance(error, Image.DecompressionBombError):
        return f"refused as a decompression bomb ({error})"
    if isinstance(error, MemoryError):
        return "not enough memory to decode this image"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    kind = type(error).__name__
    detail = text if text.startswith(kind) else f"{kind}: {text}" if text else kind  # pypng repeats it
    return f"damaged or truncated image ({detail})"


_PILLOW_LIMIT_LOCK = threading.Lock()
_HOOK_LOCK = threading.Lock()
_sink = threading.local()


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
    """`warnings.showwarning` that hands warnings raised in `_warnings_to_list` to that thread."""
    caught = getattr(_sink, "warnings", None)
    if caught is None:
        return _show_warning.previous(message, category, filename, lineno, file, line)
    text = str(message).strip()
    caught.append(text.splitlines()[0] if text else category.__name__)
    return None


class _PillowLog(logging.Handler):
    """Pillow's own log records (e.g. "More samples per pixel than can be decoded", which it
    logs rather than warns): into the reading thread's list; elsewhere as Python would print them."""

    def emit(self, record: logging.LogRecord) -> None:
        caught = getattr(_sink, "warnings", None)
        if caught is not None:
            caught.append(record.getMessage().strip().splitlines()[0] if record.getMessage().strip()
                          else record.levelname)
        elif not logging.getLogger().handlers:
            logging.lastResort.handle(record)


_PILLOW_LOG = _PillowLog(logging.WARNING)


@contextlib.contextmanager
def _warnings_to_list() -> Iterator[list[str]]:
    """Collect this thread's warnings (and Pillow's log warnings) into a list; other threads'
    go on as before.

    Not `warnings.catch_warnings`: it swaps process-wide state, and overlapping uses in decode
    threads would restore each other's hooks.
    """
    with _HOOK_LOCK:
        if warnings.showwarning is not _show_warning:
            _show_warning.previous = warnings.showwarning
            warnings.showwarning = _show_warning
        pillow = logging.getLogger("PIL")
        if _PILLOW_LOG not in pillow.handlers:
            pillow.addHandler(_PILLOW_LOG)
    _sink.warnings = caught = []
    try:
        yield caught
    finally:
        _sink.warnings = None


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """An image file as float64 0..255 whatever its depth: (H, W) gray or (H, W, 3); alpha dropped.

    The form evaluation, training and explain start from (luma via `rgb_to_luma`).
    """
    image = read_image(path)
    pixels = image.astype(np.float64) * (255.0 / max_value(image.dtype))
    if pixels.ndim == 3:
        pixels = pixels[..., 0] if pixels.shape[2] == 1 else pixels[..., :3]
    return pixels


def _png_bit_depth(path: Path) -> int:
    with path.open("rb") as handle:
        header = handle.read(33)
    return header[24] if len(header) >= 25 else 8


def _read_png16(path: Path) -> np.ndarray:
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, planes)


def _to_array(image: Image.Image) -> np.ndarray:
    if image.mode == "F":
        return _float_to_uint16(np.asarray(image, dtype=np.float32), image.filename)
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode == "I":
        data = np.asarray(image)
        return np.clip(data, 0, 65535).astype(np.uint16)
    if image.mode in ("L", "RGB", "RGBA"):
        return np.asarray(image, dtype=np.uint8)
    if image.mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8)
    has_alpha = image.mode in ("LA", "PA", "RGBa", "La") or "transparency" in image.info
    if image.mode == "LA":
        return np.asarray(image.convert("RGBA"), dtype=np.uint8)
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)


def _float_to_uint16(data: np.ndarray, name: str) -> np.ndarray:
    """A float image in 0..1 (float TIFF) as uint16 0..65535; other ranges are refused, since
    clipping them to 8 bits would silently give a black or white picture."""
    if not np.isfinite(data).all():
        raise EdgesrError(f"{name}: float image holds NaN or infinite values")
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        raise EdgesrError(f"{name}: float image with values {low:g}..{high:g}; edgesr reads float"
                          " images in 0..1 only")
    return np.rint(data * 65535.0).astype(np.uint16)


def write_image(path: str | os.PathLike, array: np.ndarray, quality: int = 95, png_level: int = 1) -> Path:
    """Write a uint8/uint16 array atomically; the format follows the file extension.

    16-bit arrays need PNG (or TIFF for grayscale); JPEG gets ``quality``; 8-bit PNG gets zlib
    level ``png_level`` (0-9). Level 1 is OpenCV's default: on a 3840x2160 photo it wrote in
    0.36 s against 1.42 s at Pillow's default 6, for a 21% larger file (5.55 vs 4.58 MB).
    """
    path = Path(path)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_image expects uint8 or uint16, got {array.dtype}")
    if not 0 <= png_level <= 9:
        raise EdgesrError(f"{path}: PNG compression level must be 0-9, got {png_level}")
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if array.dtype == np.uint16 and array.ndim == 3:
            if suffix != ".png":
                raise EdgesrError(f"{path}: 16-bit colour output needs a .png name")
            _write_png16(tmp, array)
        else:
            image = Image.fromarray(np.ascontiguousarray(array))  # uint16 (H, W) becomes I;16
            if suffix in (".jpg", ".jpeg"):
                if image.mode == "RGBA":
                    raise EdgesrError(f"{path}: JPEG has no alpha channel; use a .png name")
                image.save(tmp, quality=quality, subsampling=0)
            elif suffix == ".png":
                image.save(tmp, format="PNG", compress_level=png_level)
            else:
                image.save(tmp, format=_pil_format(suffix))
    return path


def _pil_format(suffix: str) -> str | None:
    return {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
            ".ppm": "PPM", ".pgm": "PPM"}.get(suffix)


def _write_png16(path: Path, array: np.ndarray) -> None:
    import png

    height, width, planes = array.shape
    writer = png.Writer(width, height, greyscale=False, alpha=planes == 4, bitdepth=16)
    with path.open("wb") as handle:
        writer.write(handle, array.reshape(height, width * planes))


def rgb_to_ycbcr(rgb: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """BT.601 studio-range YCbCr from RGB in 0..255, channels last (..., 3); float out.

    >>> rgb_to_ycbcr(np.array([255.0, 255.0, 255.0])).round(3)
    array([235., 128., 128.])
    """
    if rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_ycbcr expects (..., 3) channels last, got {tuple(rgb.shape)}")
    if isinstance(rgb, torch.Tensor):
        matrix = torch.as_tensor(RGB_TO_YCBCR, dtype=rgb.dtype, device=rgb.device)
        return rgb @ matrix.T + torch.as_tensor(YCBCR_OFFSET, dtype=rgb.dtype, device=rgb.device)
    return rgb.astype(np.float64, copy=False) @ RGB_TO_YCBCR.T + YCBCR_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Inverse of `rgb_to_ycbcr`: RGB in 0..255 (unclipped), channels last."""
    if ycbcr.shape[-1] != 3:
        raise ValueError(f"ycbcr_to_rgb expects (..., 3) channels last, got {tuple(ycbcr.shape)}")
    if isinstance(ycbcr, torch.Tensor):
        matrix = torch.as_tensor(YCBCR_TO_RGB, dtype=ycbcr.dtype, device=ycbcr.device)
        offset = torch.as_tensor(YCBCR_OFFSET, dtype=ycbcr.dtype, device=ycbcr.device)
        return (ycbcr - offset) @ matrix.T
    return (ycbcr.astype(np.float64, copy=False) - YCBCR_OFFSET) @ YCBCR_TO_RGB.T


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range Y (16..235) of RGB in 0..255, channels last; gray (H, W) is R=G=B."""
    if rgb.ndim == 2:
        return 16.0 + rgb.astype(np.float64) * (219.0 / 255.0)
    return rgb.astype(np.float64, copy=False) @ RGB_TO_YCBCR[0] + 16.0


def luma_to_model(y):  # noqa: ANN001, ANN201 - numpy or torch alike
    """Studio-range Y (16..235) -> the model's 0..1 input, (Y - 16) / 219."""
    return (y - LUMA_BLACK) / LUMA_RANGE


def model_to_luma(o):  # noqa: ANN001, ANN201
    """A model output -> studio-range Y, 16 + 219 * clip(o, 0, 1) (not rounded)."""
    if isinstance(o, torch.Tensor):
        return LUMA_BLACK + LUMA_RANGE * o.clamp(0.0, 1.0)
    return LUMA_BLACK + LUMA_RANGE * np.clip(o, 0.0, 1.0)


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale`` (keep top-left)."""
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def max_value(dtype: np.dtype) -> float:
    """Full-scale value of an integer image dtype (255 or 65535)."""
    return float(np.iinfo(dtype).max)
