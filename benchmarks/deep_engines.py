"""Which CPU engine runs the deep families fastest: the torch forward, torch channels-last (oneDNN),
ONNX Runtime and OpenVINO, on the same model and input, interleaved.

    python benchmarks/deep_engines.py [IDS ...] [--threads 2] [--repeats 5] [--size 1080x1920]

Times each engine's call on a (1, 1, H/s, W/s) float32 luma tensor (the model's input, Full-HD
output by default), checks that every engine's output is within 1e-5 of the torch forward, and
prints medians and the torch forward's time over each engine's. ONNX Runtime and OpenVINO run
the graph of `edgesr export` (in memory); engines whose package is missing are left out.
"""

from __future__ import annotations

import argparse
import math

import torch

from edgesr.bench import time_interleaved
from edgesr.engine.onnx_backend import OnnxRuntimeBackend
from edgesr.engine.openvino_backend import OpenVinoBackend
from edgesr.errors import EdgesrError
from edgesr.models import create_model

DEFAULT_IDS = ["ESPCN_s2_D16_S32", "FSRCNN_s2_D56_S12_M4", "eSR-CNN_s2_C4_D3_S9"]


def engines(model: torch.nn.Module, x: torch.Tensor) -> dict[str, object]:
    """name -> callable on ``x``; the torch forward first (the reference)."""
    channels_last = create_model(model.spec.id).eval()
    channels_last.load_state_dict(model.state_dict())
    channels_last = channels_last.to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)
    calls = {"torch": lambda: model(x), "torch channels-last": lambda: channels_last(x_last)}
    for name, kind in (("onnxruntime", OnnxRuntimeBackend), ("openvino", OpenVinoBackend)):
        try:
            backend = kind(model)
        except EdgesrError as error:
            print(f"{name}: left out ({error})")
            continue
        calls[name] = lambda b=backend: b(x)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", default=DEFAULT_IDS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", default="1080x1920", help="output HxW")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_h, out_w = (int(v) for v in args.size.split("x"))
    for model_id in args.ids:
        torch.manual_seed(0)
        model = create_model(model_id).eval()
        s = model.spec.scale
        x = torch.rand(1, 1, math.ceil(out_h / s), math.ceil(out_w / s), generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            calls = engines(model, x)
            reference = calls["torch"]()
            for name, call in calls.items():
                difference = float((call() - reference).abs().max())
                if difference > 1e-5:
                    raise SystemExit(f"{model_id}: {name} differs from the torch forward by {difference:.3g}")
            timings = time_interleaved(calls, args.repeats)
        base = timings["torch"].median_ms
        cells = ", ".join(f"{name} {t.median_ms:.0f} ms (x{base / t.median_ms:.2f})" for name, t in timings.items())
        print(f"{model_id}: {cells}", flush=True)
    print(f"{args.threads} threads, output {out_h}x{out_w}, float32, medians of {args.repeats} interleaved rounds;"
          " xN = torch forward time / this time; every output within 1e-5 of the torch forward")


if __name__ == "__main__":
    main()
