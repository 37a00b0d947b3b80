"""A folder of Full-HD JPEGs -> PNG through `edgesr upscale`: wall time against each stage alone.

    python benchmarks/batch_speed.py [--images 20] [--model eSR-TM_s2_K7_C16] [--threads 2]

Makes ``--images`` synthetic 1920x1080 JPEG photos (gradients, edges and noise, quality 90) in a
temporary folder, then times, in this order: reading (decoding) them all, upscaling the decoded
arrays, writing the results as PNG, and the whole batch as a user runs it (`upscale_files`, the
code behind `edgesr upscale in/ -o out/ --format png`, where the three stages overlap). Prints each time and
the batch's wall time as a multiple of the slowest stage (1.0: fully overlapped; the sum of the
stages: no overlap at all).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgesr.engine import Upscaler
from edgesr.imaging import read_image, write_image
from edgesr.upscale_files import upscale_files


def make_photos(folder: Path, count: int, size: tuple[int, int] = (1080, 1920)) -> list[Path]:
    """``count`` synthetic JPEG photos of ``size`` (H, W)."""
    rng = np.random.default_rng(0)
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(count):
        base = np.stack([128 + 90 * np.sin((x + 37 * i) / (60 + i)), 128 + 90 * np.cos((y - 11 * i) / 45),
                         255.0 * (((x // (40 + i)) + (y // 50)) % 2)], axis=-1)
        pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:03d}.jpg"
        write_image(path, pixels, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--model", default="eSR-TM_s2_K7_C16")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="edgesr-batch-") as folder:
        root = Path(folder)
        sources = root / "in"
        sources.mkdir()
        paths = make_photos(sources, args.images)
        upscaler = Upscaler(args.model)
        upscaler.upscale(read_image(paths[0]))  # compile/load the kernel outside the timings

        tick = time.perf_counter()
        images = [read_image(p) for p in paths]
        read_s = time.perf_counter() - tick
        tick = time.perf_counter()
        results = [upscaler.upscale(image) for image in images]
        upscale_s = time.perf_counter() - tick
        tick = time.perf_counter()
        for path, result in zip(paths, results):
            write_image(root / f"{path.stem}.png", result)
        write_s = time.perf_counter() - tick
        del images, results

        # the user's command: edgesr upscale in/ -o out/ --format png
        output = root / "out"
        tick = time.perf_counter()
        report = upscale_files([str(sources)], output, model=args.model, image_format="png")
        batch_s = time.perf_counter() - tick
        assert not report.errors and len(report.written) == args.images, report.errors
    slowest = max(read_s, upscale_s, write_s)
    print(f"{args.images} images 1920x1080 JPEG, {args.model}, {args.threads} threads")
    print(f"read {read_s:.2f} s | upscale {upscale_s:.2f} s | write {write_s:.2f} s"
          f" | sum {read_s + upscale_s + write_s:.2f} s")
    print(f"edgesr upscale folder: {batch_s:.2f} s = {batch_s / slowest:.2f}x the slowest stage"
          f" ({batch_s / (read_s + upscale_s + write_s):.2f}x the sum)")


if __name__ == "__main__":
    main()
