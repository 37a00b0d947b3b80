"""One run on a lent NVIDIA GPU: the compiled Triton kernels against the torch forward, then the
issue-18 speed and energy table. Run without TRITON_INTERPRET (the kernels must compile):

    python benchmarks/gpu_check.py --out results/          # ~3-5 minutes on an H100/H200

1. Correctness of the compiled kernels (the test suite only runs them interpreted): every
   one-layer family at scales 2..4, fp32 against the torch forward on the GPU with TF32 off
   (<= 1e-5), fp16/bf16 within 2e-3/2e-2 of the range, uint8 RGB against the CPU pipeline
   (<= 1 level); CUDA graphs against eager for a deep model.
2. The kernel time of the speed models for a few tile sizes (set the best with
   EDGESR_TRITON_TILE, or make it the default in triton_backend.TILE).
3. ``edgesr bench`` on Full-HD x2 output, fp16, batch 1, with --energy, for the issue's models
   (triton), and the deep families with cudagraph and torch; rows go to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from edgesr.engine import Upscaler, make_backend
from edgesr.models import create_model

ONE_LAYER = ["eSR-MAX_s{s}_K3_C2", "eSR-MAX_s{s}_K7_C8", "eSR-TM_s{s}_K3_C2", "eSR-TM_s{s}_K7_C16",
             "eSR-TR_s{s}_K3_C4", "eSR-TR_s{s}_K7_C16", "Bicubic_s{s}"]
SPEED = ["eSR-TM_s2_K7_C16", "eSR-TR_s2_K7_C16", "eSR-MAX_s2_K3_C2", "eSR-MAX_s3_K3_C1", "Bicubic_s2"]
DEEP = ["ESPCN_s2_D4_S6", "eSR-CNN_s2_C4_D3_S9", "FSRCNN_s2_D56_S12_M4"]


def check_kernels() -> list[str]:
    """Failures of the compiled kernels against the references (empty when all pass)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    failures = []
    rng = np.random.default_rng(0)
    for s in (2, 3, 4):
        for pattern in ONE_LAYER:
            name = pattern.format(s=s)
            torch.manual_seed(0)
            model = create_model(name).eval()
            lr = torch.rand(2, 1, 37, 61)
            with torch.inference_mode():
                reference = model.cuda()(lr.cuda()).cpu()
            for dtype, tolerance in (("float32", 1e-5), ("float16", 2e-3), ("bfloat16", 2e-2)):
                got = make_backend("triton", model, device="cuda", dtype=dtype)(lr)
                error = float((got - reference).abs().max())
                limit = tolerance if dtype == "float32" else tolerance * float(reference.abs().max())
                if not error <= limit:
                    failures.append(f"{name} {dtype}: max error {error:.3g} > {limit:.3g}")
            image = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
            expected = Upscaler(model.cpu().float(), backend="torch").upscale(image)
            got = Upscaler(model, backend="triton", device="cuda").upscale(image)
            levels = int(np.abs(got.astype(int) - expected.astype(int)).max())
            if levels > 1:
                failures.append(f"{name} RGB uint8: {levels} levels from the CPU pipeline")
    model = create_model(DEEP[1]).eval()
    lr = torch.rand(1, 1, 45, 80)
    with torch.inference_mode():
        reference = model.cuda()(lr.cuda()).cpu()
    got = make_backend("cudagraph", model, device="cuda", dtype="float32")(lr)
    if not torch.allclose(got, reference, atol=1e-5):
        failures.append(f"cudagraph {DEEP[1]}: max error {float((got - reference).abs().max()):.3g}")
    return failures


def sweep_tiles(tiles: list[str], out: Path) -> dict[str, dict[str, float]]:
    """Kernel ms (fp16, resident, Full-HD x2 output) of the speed models for each tile setting."""
    from triton.testing import do_bench

    from edgesr.engine.triton_backend import tile_setting

    results: dict[str, dict[str, float]] = {}
    for name in ("eSR-TM_s2_K7_C16", "eSR-MAX_s2_K3_C2", "Bicubic_s2"):
        backend = make_backend("triton", create_model(name).eval(), device="cuda", dtype="float16")
        lr = torch.rand(1, 1, 540, 960, device="cuda", dtype=torch.float16)
        for tile in tiles:
            backend.tile, backend.warps = tile_setting(tile)
            ms = do_bench(lambda b=backend: b.forward(lr, out_dtype=torch.float16), warmup=50, rep=200)
            results.setdefault(name, {})[tile] = ms
            print(f"{name} tile {tile}: {ms:.4f} ms ({1e3 / ms:.0f} fps)", flush=True)
    (out / "tiles.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def bench(models: list[str], backend: str, out: Path, repeats: int) -> dict:
    path = out / f"speed_cuda_{backend}.json"
    command = [sys.executable, "-m", "edgesr", "bench", *models, "--device", "cuda", "--backend", backend,
               "--energy", "-r", str(repeats), "-o", str(path)]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    return json.loads(path.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_results")))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--tiles", default="8x16:4,16x16:4,8x32:4,16x16:8,16x32:8,32x32:8",
                        help="tile settings to sweep (EDGESR_TRITON_TILE syntax); '' skips the sweep")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET") == "1":
        parser.error("unset TRITON_INTERPRET: this checks the compiled kernels")
    args.out.mkdir(parents=True, exist_ok=True)
    failures = [] if args.skip_check else check_kernels()
    print("kernel check:", "all pass" if not failures else "\n  ".join(["FAILED", *failures]), flush=True)
    (args.out / "kernel_check.txt").write_text("\n".join(failures or ["all pass"]) + "\n")
    if args.tiles:
        sweep_tiles(args.tiles.split(","), args.out)
    bench(SPEED, "triton", args.out, args.repeats)
    bench(DEEP, "cudagraph", args.out, args.repeats)
    bench(DEEP, "torch", args.out, args.repeats)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
