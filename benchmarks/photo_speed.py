"""`Upscaler(id).upscale(photo)` on real RGB photos next to OpenCV's bicubic on the same array.

    python benchmarks/photo_speed.py PHOTO [PHOTO ...] [--threads 2] [--repeats 21]
        [--burst 4] [--models eSR-MAX_s2_K3_C2,Bicubic_s2,eSR-TM_s2_K7_C16]

Each photo is read once; every model's call and `cv2.resize(rgb, (2W, 2H), INTER_CUBIC)` run
interleaved round by round (`edgesr.bench.time_interleaved`, a new random order each round), each
sample the mean of ``--burst`` back-to-back calls as a user's loop over photos makes them (the
first call after another library pays for its threads still spinning), medians printed with the
ratio to OpenCV. `edgesr bench --pipeline rgb` instead times single calls, each right after an
untimed one of the same engine, on random pixels.
"""

from __future__ import annotations

import argparse

import cv2
import torch

from edgesr.bench import time_interleaved
from edgesr.engine import Upscaler
from edgesr.imaging import read_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--burst", type=int, default=4, help="back-to-back calls per sample")
    parser.add_argument("--models", default="eSR-MAX_s2_K3_C2,Bicubic_s2,eSR-TM_s2_K7_C16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    upscalers = {m: Upscaler(m) for m in args.models.split(",")}
    for path in args.photos:
        rgb = read_image(path)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            print(f"{path}: skipped (not RGB)")
            continue
        h, w = rgb.shape[:2]
        scales = {u.scale for u in upscalers.values()}
        calls = {f"opencv x{s}": (lambda s=s: cv2.resize(rgb, (s * w, s * h), interpolation=cv2.INTER_CUBIC))
                 for s in scales}
        calls.update({m: (lambda u=u: u.upscale(rgb)) for m, u in upscalers.items()})
        timings = time_interleaved(calls, args.repeats, burst=args.burst)
        cells = []
        for name, up in upscalers.items():
            ms, base = timings[name].median_ms, timings[f"opencv x{up.scale}"].median_ms
            cells.append(f"{name} {ms:.2f} ms ({ms / base:.2f}x)")
        opencv = ", ".join(f"{k} {v.median_ms:.2f} ms" for k, v in timings.items() if k.startswith("opencv"))
        print(f"{path} {w}x{h}: {opencv}; " + "; ".join(cells))


if __name__ == "__main__":
    main()
