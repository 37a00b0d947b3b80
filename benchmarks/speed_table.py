"""Reproduce the speed table of issue 5 in one run: markdown + PNG bar chart.

    python benchmarks/speed_table.py [--threads 2] [--repeats 15] [--out benchmarks/results]

Every model upscales a uint8 luma plane to a 1920x1080 uint8 plane through ``backend="auto"``
(the fused kernel for these models), interleaved round by round with OpenCV INTER_CUBIC, Pillow
BICUBIC, torch bicubic interpolate and the torch reference forward on the same input, so the
ratios hold on a busy machine. Writes speed.md, speed.json and speed.png (with matplotlib).
Targets checked: eSR-TM/TR_s2_K7_C16 >= 60% of the GEMM peak; eSR-MAX_s2_K3_C2, eSR-MAX_s3_K3_C1
and Bicubic_s2 <= 1.2x OpenCV's time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from edgesr.atomic import atomic_path, write_text_atomic
from edgesr.bench import DEFAULT_MODELS, bench
from edgesr.results import write_table

PEAK_TARGET = {"eSR-TM_s2_K7_C16": 0.60, "eSR-TR_s2_K7_C16": 0.60}
OPENCV_TARGET = {"eSR-MAX_s2_K3_C2": 1.2, "eSR-MAX_s3_K3_C1": 1.2, "Bicubic_s2": 1.2}


def markdown(rows: dict, info: dict, command: str) -> str:
    lines = [
        f"Measured with `{command}`",
        "",
        f"{info['machine']}; {info['libraries']}; {info['dtype']};"
        f" GEMM peak {info['gemm_peak_gflops']:.0f} GFLOP/s (best 1024^3 sgemm at the start); % peak is"
        " against the median GEMM rate measured in the same rounds as each model (GEMM column).",
        "Output 1920x1080, uint8 luma in/out; medians with interquartile spread; ratio = time / baseline"
        " time (< 1: faster), speed-up = torch forward time / time.",
        "",
        "| model | backend | ms | ± | GMAC | GFLOP/s | GEMM GFLOP/s | % peak | x OpenCV | x Pillow | x torch bicubic |"
        " speed-up vs torch forward | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model_id, r in rows.items():
        target = ""
        if model_id in PEAK_TARGET:
            ok = r["peak_fraction_cpu"] >= PEAK_TARGET[model_id]
            target = f"≥{PEAK_TARGET[model_id]:.0%} peak: {'met' if ok else 'missed'}"
        elif model_id in OPENCV_TARGET and "ratio_vs_opencv" in r:
            ok = r["ratio_vs_opencv"] <= OPENCV_TARGET[model_id]
            target = f"≤{OPENCV_TARGET[model_id]}x OpenCV: {'met' if ok else 'missed'}"
        cell = lambda key: f"{r[key]:.2f}" if key in r else "n/a"  # noqa: E731
        lines.append(
            f"| {model_id} | {r['backend']} | {r['ms_cpu']:.2f} | {r['spread_ms_cpu']:.2f} |"
            f" {r['macs'] / 1e9:.3f} | {r['gflops_cpu']:.1f} | {r['gemm_gflops_cpu']:.0f} |"
            f" {100 * r['peak_fraction_cpu']:.0f} |"
            f" {cell('ratio_vs_opencv')} | {cell('ratio_vs_pillow')} | {cell('ratio_vs_torch_bicubic')} |"
            f" {r.get('speedup_vs_torch_reference', float('nan')):.1f} | {target} |")
    lines.append("")
    lines.append("Baselines (ms): " + "; ".join(
        f"{model_id}: OpenCV {r.get('ms_opencv_cpu', float('nan')):.2f}, Pillow {r['ms_pillow_cpu']:.2f},"
        f" torch bicubic {r['ms_torch_bicubic_cpu']:.2f}, torch forward {r['ms_torch_reference_cpu']:.1f}"
        for model_id, r in rows.items()))
    for note in info["notes"]:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


def chart(rows: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(rows)
    series = {"edgesr (this engine)": "ms_cpu", "OpenCV INTER_CUBIC": "ms_opencv_cpu",
              "Pillow BICUBIC": "ms_pillow_cpu", "torch bicubic": "ms_torch_bicubic_cpu",
              "torch forward": "ms_torch_reference_cpu"}
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.16
    for i, (label, key) in enumerate(series.items()):
        values = [rows[n].get(key, float("nan")) for n in names]
        ax.bar([x + (i - 2) * width for x in range(len(names))], values, width, label=label)
    ax.set_yscale("log")
    ax.set_ylabel("ms per 1920x1080 output (log)")
    ax.set_xticks(range(len(names)), names, rotation=12, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("Full-HD upscaling time, medians measured side by side")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, info = bench(args.models, backend=args.backend, threads=args.threads, repeats=args.repeats)
    command = "python " + " ".join(sys.argv)
    text = markdown(rows, info, command)
    write_text_atomic(args.out / "speed.md", text)
    write_table(rows, args.out / "speed.json")
    drawn = chart(rows, args.out / "speed.png")
    print(text)
    print(f"wrote {args.out / 'speed.md'}, {args.out / 'speed.json'}"
          + (f", {args.out / 'speed.png'}" if drawn else " (no PNG: matplotlib not installed)"))


if __name__ == "__main__":
    main()
