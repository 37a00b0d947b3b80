"""Train the shipped model zoo with `edgesr.train`, measure it, and write src/edgesr/weights/.

Run by hand (long). Resumable: a model already in the manifest with the same recipe is skipped,
and an interrupted training resumes from its checkpoint in --runs.

    python benchmarks/train_zoo.py --data /path/to/Sun80 --set5 /path/to/Set5 --set14 /path/to/Set14 \
        [--reference /path/to/official/weights] [--only eSR-TM_s2_K7_C16] [--threads 2]

For every model: train from scratch (the recipe's start: Xavier + centre tap, or the data-free
bicubic start for ESPCN and eSR-CNN; never from official weights),
evaluate ours with the paper protocol on Set5 and Set14 and, when --reference is given, the
official weights of the same id on the same images with the same code; print both and the
difference; copy the weights into the package and record everything in manifest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from edgesr.atomic import write_text_atomic
from edgesr.evaluate import evaluate
from edgesr.models import create_model
from edgesr.train import TrainConfig, recipe_for, train
from edgesr.weights import SHIPPED_DIR

#: The zoo, per scale: best one-layer models, the smallest that beat bicubic, an eSR-CNN, an ESPCN.
ZOO = [template.format(s=s) for s in (2, 3, 4) for template in (
    "eSR-MAX_s{s}_K3_C2", "eSR-MAX_s{s}_K7_C8", "eSR-TM_s{s}_K7_C16", "eSR-TR_s{s}_K7_C16",
    "eSR-CNN_s{s}_C4_D3_S9", "ESPCN_s{s}_D4_S6")]
DEFAULTS = {s: f"eSR-TM_s{s}_K7_C16" for s in (2, 3, 4)}

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="training images (folder or dataset name)")
    parser.add_argument("--set5", required=True)
    parser.add_argument("--set14", required=True)
    parser.add_argument("--reference", help="folder of official <id>.model files, for comparison only")
    parser.add_argument("--runs", default="runs/zoo", help="training outputs and checkpoints")
    parser.add_argument("--only", nargs="*", help="train only these ids")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    manifest_path = SHIPPED_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}, "defaults": {}}
    ids = args.only or ZOO
    sets = [args.set5, args.set14]
    for model_id in ids:
        recipe = recipe_for(model_id)
        config = TrainConfig(model_id, data=[args.data], val=[args.set5], threads=args.threads, **recipe)
        known = manifest["models"].get(model_id)
        # from_dict gives recipes recorded before a TrainConfig field existed that field's old value
        if known and asdict(TrainConfig.from_dict(known["recipe"])) == asdict(config):
            print(f"{model_id}: already shipped with this recipe, skipped")
            continue
        runs = Path(args.runs)
        resume = (runs / f"{model_id}.ckpt.pt").exists()
        started = time.perf_counter()
        result = train(config, out=runs, resume=resume)
        wall = time.perf_counter() - started
        ours = evaluate([create_model(model_id, weights=result.weights)], sets).table[model_id]
        entry = {
            "file": f"{model_id}.safetensors",
            "recipe": asdict(config),
            "data": Path(args.data).name,
            "train_seconds": result.record["train_seconds"],
            "threads": result.record["threads"],
            "metrics": {k: round(v, 5) for k, v in ours.items() if k.startswith(("psnr_", "ssim_"))},
        }
        line = f"{model_id}: trained in {wall:.0f} s; ours " + " ".join(
            f"{k} {v:.4f}" for k, v in entry["metrics"].items())
        if args.reference and (Path(args.reference) / f"{model_id}.model").exists():
            theirs = evaluate([create_model(model_id, weights=Path(args.reference) / f"{model_id}.model")],
                              sets).table[model_id]
            entry["official_same_images"] = {k: round(v, 5) for k, v in theirs.items()
                                             if k.startswith(("psnr_", "ssim_"))}
            line += "; ours - official " + " ".join(
                f"{k} {ours[k] - theirs[k]:+.4f}" for k in entry["metrics"] if k.startswith("psnr_"))
        print(line, flush=True)
        target = SHIPPED_DIR / entry["file"]
        SHIPPED_DIR.mkdir(exist_ok=True)
        shutil.copyfile(result.weights, target)
        entry["sha256"] = sha256(target)
        manifest["models"][model_id] = entry
        manifest["defaults"] = {str(s): i for s, i in DEFAULTS.items() if i in manifest["models"]}
        write_text_atomic(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return None


if __name__ == "__main__":
    sys.exit(main())
