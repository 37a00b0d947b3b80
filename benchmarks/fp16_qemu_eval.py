"""PSNR of the fused kernel's fp16 variant (ARMv8.2-A) on Set5/Set14, measured on the real kernel.

No ARMv8.2 machine is at hand, so `edgesr.evaluate.evaluate` (the code behind `edgesr eval`) runs
with every one-layer model routed through the aarch64 build of the kernel under qemu-aarch64:
each batch becomes a case of .ci/arm/driver.c (fp16 conv, float input and output) whose output
the driver writes back. Images, LR degradation, protocol and scoring are evaluate's own, so the
numbers compare with `edgesr eval --precision fp32` row by row. Slow (emulated): ~30 minutes
for the 12 shipped models on Set5 + Set14 on 2 shared cores.

    aarch64-linux-gnu-gcc -O3 -static -pthread -fno-math-errno -std=gnu11 -march=armv8.2-a+fp16 \\
        -o driver82 .ci/arm/driver.c -lm
    python benchmarks/fp16_qemu_eval.py --driver driver82 --datasets Set5,Set14 -o fp16.json
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgesr import evaluate as evaluation
from edgesr.engine.fused import make_plan
from edgesr.engine.native import PRECISIONS
from edgesr.weights import shipped_manifest


def _filter_bytes(model: torch.nn.Module) -> bytes:
    plan = make_plan(model)
    kh, kw = plan.weight.shape[1:]
    return (struct.pack("<7i", 1, kh, kw, *plan.pad, plan.channels, plan.mode)
            + np.ascontiguousarray(plan.weight, "<f4").tobytes())


class QemuRunner:
    """(N, 1, H, W) float model inputs -> (N, 1, sH, sW): the kernel at ``precision`` under qemu."""

    def __init__(self, model: torch.nn.Module, driver: Path, precision: str, threads: int) -> None:
        self.model, self.driver, self.threads = model, driver, threads
        self.code = PRECISIONS[precision]
        self.scale = model.spec.scale

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr.detach().float().numpy()[:, 0]
        n, h, w = x.shape
        s = self.scale
        name = b"qemu eval"
        case = (struct.pack("<i", len(name)) + name
                + struct.pack("<9i", 0, n, h, w, s, 0, self.threads, 0, self.code)
                + _filter_bytes(self.model) + np.array([1, 0, 1, 0, 0, 0], "<f4").tobytes()
                + struct.pack("<2i", 0, 1) + np.ascontiguousarray(x, "<f4").tobytes()
                + struct.pack("<i", 0) + struct.pack("<2i", 0, 1)
                + np.zeros(n * h * s * w * s, "<f4").tobytes()   # no expectation: any output passes
                + np.array([1e30, 1.0], "<f4").tobytes())
        with tempfile.TemporaryDirectory() as folder:
            cases, outputs = Path(folder) / "case.bin", Path(folder) / "out.bin"
            cases.write_bytes(b"ESRC" + struct.pack("<i", 1) + case)
            subprocess.run(["qemu-aarch64", "-cpu", "max", str(self.driver), str(cases), str(outputs)],
                           check=True, capture_output=True)
            out = np.fromfile(outputs, "<f4").reshape(n, 1, h * s, w * s)
        return torch.from_numpy(out.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", type=Path, required=True, help="aarch64 build of .ci/arm/driver.c")
    parser.add_argument("--datasets", default="Set5,Set14")
    parser.add_argument("--precision", default="fp16", choices=sorted(PRECISIONS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", help="default: the shipped eSR-MAX/TM/TR models")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    ids = args.models or [m for m in shipped_manifest()["models"] if m.split("_")[0] in ("eSR-MAX", "eSR-TM", "eSR-TR")]
    evaluation._runner = lambda model, backend, precision="fp32": QemuRunner(
        model, args.driver, args.precision, args.threads)
    result = evaluation.evaluate(ids, [d for d in args.datasets.split(",") if d])
    for model_id, row in result.table.items():
        print(model_id, " ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("psnr_")), flush=True)
    if args.output:
        args.output.write_text(json.dumps(result.table, indent=1))


if __name__ == "__main__":
    main()
