"""Seeded fuzz corpus: valid seed images in many formats and damaged copies of them.

Shared by tests/test_reliability.py (a few hundred mutants) and benchmarks/fuzz_upscale.py
(thousands). Everything is generated from integer seeds, so a failing case can be rebuilt.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

#: (name, extension, writer) of every seed format; writers take a numpy Generator.
SeedWriter = Callable[[np.random.Generator], bytes]


def _pixels(rng: np.random.Generator, channels: int, dtype: type = np.uint8) -> np.ndarray:
    """A small smooth-ish image: a gradient plus noise, so codecs have structure to damage."""
    height, width = int(rng.integers(12, 40)), int(rng.integers(12, 40))
    top = np.iinfo(dtype).max
    ramp = np.linspace(0, top, width)[None, :] * np.linspace(0.3, 1, height)[:, None]
    noise = rng.integers(0, top // 8 + 1, (height, width, channels))
    data = np.clip(ramp[..., None] + noise, 0, top).astype(dtype)
    return data[..., 0] if channels == 1 else data


def _pil(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png16(rng: np.random.Generator, planes: int) -> bytes:
    import png

    data = _pixels(rng, planes, np.uint16)
    height, width = data.shape[:2]
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=planes == 1, alpha=planes in (2, 4), bitdepth=16).write(
        buffer, data.reshape(height, width * planes))
    return buffer.getvalue()


def _tiff_multipage(rng: np.random.Generator) -> bytes:
    first, second = (Image.fromarray(_pixels(rng, 3)) for _ in range(2))
    return _pil(first, "TIFF", save_all=True, append_images=[second])


SEED_FORMATS: list[tuple[str, str, SeedWriter]] = [
    ("png-gray8", ".png", lambda r: _pil(Image.fromarray(_pixels(r, 1)), "PNG")),
    ("png-rgb8", ".png", lambda r: _pil(Image.fromarray(_pixels(r, 3)), "PNG")),
    ("png-rgba8", ".png", lambda r: _pil(Image.fromarray(_pixels(r, 4)), "PNG")),
    ("png-palette", ".png", lambda r: _pil(Image.fromarray(_pixels(r, 3)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG")),
    ("png-la", ".png", lambda r: _pil(Image.fromarray(_pixels(r, 2), "LA"), "PNG")),
    ("png-1bit", ".png", lambda r: _pil(Image.fromarray(_pixels(r, 1)).convert("1"), "PNG")),
    ("png-gray16", ".png", lambda r: _png16(r, 1)),
    ("png-rgb16", ".png", lambda r: _png16(r, 3)),
    ("png-rgba16", ".png", lambda r: _png16(r, 4)),
    ("jpeg-rgb", ".jpg", lambda r: _pil(Image.fromarray(_pixels(r, 3)), "JPEG", quality=90)),
    ("jpeg-gray", ".jpg", lambda r: _pil(Image.fromarray(_pixels(r, 1)), "JPEG", quality=90)),
    ("jpeg-cmyk", ".jpg", lambda r: _pil(Image.fromarray(_pixels(r, 4), "CMYK"), "JPEG", quality=90)),
    ("bmp-rgb", ".bmp", lambda r: _pil(Image.fromarray(_pixels(r, 3)), "BMP")),
    ("tiff-rgb", ".tif", lambda r: _pil(Image.fromarray(_pixels(r, 3)), "TIFF")),
    ("tiff-gray16", ".tif", lambda r: _pil(Image.fromarray(_pixels(r, 1, np.uint16)), "TIFF")),
    ("tiff-float", ".tif", lambda r: _pil(Image.fromarray(r.random((17, 23), dtype=np.float32)), "TIFF")),
    ("tiff-multipage", ".tiff", _tiff_multipage),
    ("webp-rgb", ".webp", lambda r: _pil(Image.fromarray(_pixels(r, 3)), "WEBP", lossless=True)),
    ("ppm-rgb", ".ppm", lambda r: _pil(Image.fromarray(_pixels(r, 3)), "PPM")),
    ("pgm-gray", ".pgm", lambda r: _pil(Image.fromarray(_pixels(r, 1)), "PPM")),
]

EXTENSIONS = sorted({ext for _, ext, _ in SEED_FORMATS})


def make_seeds(rng: np.random.Generator, per_format: int = 1) -> list[tuple[str, str, bytes]]:
    """Valid images: (name, extension, bytes), ``per_format`` of every format in `SEED_FORMATS`."""
    return [(f"{name}-{k}", ext, write(rng)) for name, ext, write in SEED_FORMATS for k in range(per_format)]


def _flip(data: bytearray, rng: np.random.Generator) -> str:
    for _ in range(int(rng.integers(1, 9))):
        data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
    return "flip"


def _overwrite(data: bytearray, rng: np.random.Generator) -> str:
    for _ in range(int(rng.integers(1, 5))):
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    return "overwrite"


def _insert(data: bytearray, rng: np.random.Generator) -> str:
    at = int(rng.integers(0, len(data)))
    data[at:at] = rng.bytes(int(rng.integers(1, 64)))
    return "insert"


def _delete(data: bytearray, rng: np.random.Generator) -> str:
    at = int(rng.integers(0, len(data)))
    del data[at:at + int(rng.integers(1, 64))]
    return "delete"


def _truncate(data: bytearray, rng: np.random.Generator) -> str:
    del data[int(rng.integers(1, len(data))):]
    return "truncate"


def _header(data: bytearray, rng: np.random.Generator) -> str:
    for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(0, min(64, len(data))))] = int(rng.integers(0, 256))
    return "header"


def _append(data: bytearray, rng: np.random.Generator) -> str:
    data += rng.bytes(int(rng.integers(1, 512)))
    return "append"


def _dimensions(data: bytearray, rng: np.random.Generator) -> str:
    """Large or zero values where headers keep sizes (bytes 16..24 hold them in PNG)."""
    at = int(rng.integers(4, min(40, len(data) - 4)))
    data[at:at + 4] = bytes(rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", b"\x00\x01\x00\x00"]))
    return "dimensions"


MUTATIONS = [_flip, _overwrite, _insert, _delete, _truncate, _header, _append, _dimensions]


def mutate(seed: bytes, extension: str, rng: np.random.Generator) -> tuple[str, str, bytes]:
    """One damaged copy: (mutation name, extension, bytes); now and then under a wrong extension."""
    data = bytearray(seed)
    names = [MUTATIONS[int(rng.integers(0, len(MUTATIONS)))](data, rng) for _ in range(int(rng.integers(1, 3)))]
    if rng.random() < 0.1:
        extension = EXTENSIONS[int(rng.integers(0, len(EXTENSIONS)))]
        names.append("extension")
    return "+".join(names), extension, bytes(data)


def write_corpus(folder: Path, seed: int, mutants: int, per_format: int = 1) -> tuple[list[Path], list[Path]]:
    """Write seeds and ``mutants`` damaged copies (round robin over the seeds) into ``folder``.

    Returns (seed files, mutant files). File names say the format and the mutation.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = make_seeds(rng, per_format)
    seed_files = []
    for name, ext, data in seeds:
        path = folder / f"seed-{name}{ext}"
        path.write_bytes(data)
        seed_files.append(path)
    mutant_files = []
    for index in range(mutants):
        name, ext, data = seeds[index % len(seeds)]
        how, ext, damaged = mutate(data, ext, rng)
        path = folder / f"m{index:05d}-{name}-{how}{ext}"
        path.write_bytes(damaged)
        mutant_files.append(path)
    return seed_files, mutant_files
