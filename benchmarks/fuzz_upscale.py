"""Fuzz `edgesr upscale` with thousands of damaged images and count what a user would see.

Seeds: valid images in every format of tests/fuzz_corpus.py (PNG 8/16-bit gray/RGB/RGBA,
palette, LA, 1-bit; JPEG RGB/gray/CMYK; BMP; TIFF RGB/16-bit/float/multipage; WebP; PPM; PGM).
Mutants: byte flips and overwrites, inserts, deletes, truncation, header and size damage,
appended junk, wrong extensions. They go through the real CLI (``python -m edgesr upscale``) in
batches; then every written output is compared with an isolated run of its input alone.

Prints: mutants tried, tracebacks (must be 0), one-line errors, warning lines, stray stderr
lines (neither error nor warning: must be 0), outputs written, outputs identical to isolated
runs, temporary files left (must be 0).

    nice -n 10 python benchmarks/fuzz_upscale.py --mutants 5000 --seed 1
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzz_corpus import SEED_FORMATS, write_corpus  # noqa: E402

from edgesr.atomic import TEMP_PREFIX  # noqa: E402
from edgesr.upscale_files import upscale_files  # noqa: E402


def run_batch(files: list[Path], out: Path, model: str) -> tuple[int, str, str]:
    """One CLI process over ``files`` -> (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-m", "edgesr", "upscale", *map(str, files), "-o", str(out),
                             "-m", model], capture_output=True, text=True)
    return result.returncode, result.stdout, result.stderr


def count(folder: Path, files: list[Path], model: str, batch: int) -> dict[str, int]:
    """Run the corpus in batches and tally what came out."""
    out = folder / "out"
    figures = dict.fromkeys(("tracebacks", "errors", "warnings", "stray_lines", "exit_codes_not_1"), 0)
    for start in range(0, len(files), batch):
        code, stdout, stderr = run_batch(files[start:start + batch], out, model)
        text = stdout + stderr
        figures["tracebacks"] += text.count("Traceback") + text.count("internal error")
        lines = stderr.splitlines()
        figures["errors"] += sum(line.startswith("error: ") for line in lines)
        figures["warnings"] += sum(line.startswith("warning: ") for line in lines)
        stray = [line for line in lines if not line.startswith(("error: ", "warning: "))]
        figures["stray_lines"] += len(stray)
        for line in stray[:5]:
            print(f"stray stderr line: {line}", file=sys.stderr)
        figures["exit_codes_not_1"] += code != 1
    written = sorted(out.iterdir())
    figures["written"] = len(written)
    figures["identical"] = sum(identical_alone(folder, path, model) for path in written)
    figures["temporaries_left"] = sum(p.name.startswith(TEMP_PREFIX) for p in folder.rglob("*"))
    return figures


def identical_alone(folder: Path, output: Path, model: str) -> bool:
    """Whether ``output`` has the same bytes as its input upscaled on its own (in-process)."""
    alone = folder / "alone"
    report = upscale_files([str(folder / "in" / output.name)], alone, model=model)
    same = not report.errors and (alone / output.name).read_bytes() == output.read_bytes()
    (alone / output.name).unlink(missing_ok=True)
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (seeds and mutations)")
    parser.add_argument("--per-format", type=int, default=2, help="valid seed images per format")
    parser.add_argument("--batch", type=int, default=1000, help="files per CLI process")
    parser.add_argument("--model", default="eSR-MAX_s2_K3_C2")
    args = parser.parse_args()
    logging.getLogger("edgesr").setLevel(logging.ERROR)  # the isolated reruns: warnings were counted
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seeds, mutants = write_corpus(folder / "in", args.seed, args.mutants, args.per_format)
        figures = count(folder, seeds + mutants, args.model, args.batch)
    print(f"corpus seed {args.seed}: {len(SEED_FORMATS)} formats, {len(seeds)} valid seeds,"
          f" model {args.model}, {time.perf_counter() - started:.0f} s")
    print(f"mutants tried        {len(mutants)}")
    print(f"tracebacks           {figures['tracebacks']}")
    print(f"one-line errors      {figures['errors']}")
    print(f"warning lines        {figures['warnings']}")
    print(f"stray stderr lines   {figures['stray_lines']}")
    print(f"outputs written      {figures['written']} (of {len(seeds) + len(mutants)} inputs, seeds included)")
    print(f"identical to alone   {figures['identical']} of {figures['written']}")
    print(f"temporaries left     {figures['temporaries_left']}")
    print(f"batches not exit 1   {figures['exit_codes_not_1']}")


if __name__ == "__main__":
    main()
