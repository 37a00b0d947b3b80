"""Train the shipped model zoo with `edgesr.train`, measure it, and write src/edgesr/weights/.

Run by hand (long). Resumable: a model already in the manifest with the same recipe is skipped,
and an interrupted training resumes from its checkpoint in --runs.

    python benchmarks/train_zoo.py --data /path/to/Sun80 --set5 /path/to/Set5 --set14 /path/to/Set14 \
        [--reference /path/to/official/weights] [--only eSR-TM_s2_K7_C16] [--threads 2] [--device cuda]

A run trained elsewhere (say `edgesr train` on a GPU machine) is shipped with --adopt RUN_DIR...:
its <id>.safetensors and <id>.json sidecar are measured here the same way and recorded with the
config they were trained with. A run that started from an earlier run's weights (`edgesr train
--init FILE`: a second cycle) is shipped only if that chain begins from scratch with edgesr; the
manifest lists the earlier cycles.

For every model: train from scratch (the recipe's start: Xavier + centre tap, or the data-free
bicubic start for ESPCN and eSR-CNN; never from official weights),
evaluate ours with the paper protocol on Set5 and Set14 and, when --reference is given, the
official weights of the same id on the same images with the same code; print both and the
difference; copy the weights into the package and record everything in manifest.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from edgesr.atomic import write_text_atomic
from edgesr.data.download import file_digest
from edgesr.evaluate import evaluate
from edgesr.models import ModelSpec, create_model
from edgesr.train import INIT_KINDS, TrainConfig, recipe_for, train
from edgesr.weights import SHIPPED_DIR

#: The zoo, per scale: best one-layer models, the smallest that beat bicubic, an eSR-CNN, an ESPCN.
ZOO = [template.format(s=s) for s in (2, 3, 4) for template in (
    "eSR-MAX_s{s}_K3_C2", "eSR-MAX_s{s}_K7_C8", "eSR-TM_s{s}_K7_C16", "eSR-TR_s{s}_K7_C16",
    "ESPCN_s{s}_D4_S6")] + ["eSR-CNN_s2_C8_D7_S9", "eSR-CNN_s3_C8_D9_S9", "eSR-CNN_s4_C8_D9_S12",
                            "ESPCN_s3_D28_S32", "ESPCN_s4_D40_S32"]  # the top of the x3/x4 maps (README)
#: ESPCN_s2_D34_S32, the top of the x2 map, ships from three cycles of `edgesr train --init`
#: (README, "The top of the x2, x3 and x4 maps") adopted with --adopt; one cycle falls short.
#: Settings beyond the recipe that depend on the training data (Sun80: JPEG photos). eSR-CNN
#: gains from shrinking them first (benchmarks/train_recipe.md); the one-layer models and ESPCN
#: were trained on them as they are.
DATA_SETTINGS = {"eSR-CNN": {"pre_scale": 0.5}}
#: Config fields that do not change the trained weights (where and how it ran, what it printed).
RUN_ONLY = {"device", "threads", "val", "val_every"}
DEFAULTS = {s: f"eSR-TM_s{s}_K7_C16" for s in (2, 3, 4)}

def same_recipe(recorded: dict, config: TrainConfig) -> bool:
    """Whether a manifest recipe trains the same weights as ``config``: fields added to
    `TrainConfig` since take their old value (from_dict), data folders compare by name."""
    def essential(values: dict) -> dict:
        values = {k: v for k, v in values.items() if k not in RUN_ONLY}
        return {**values, "data": [Path(d).name for d in values["data"]]}
    return essential(asdict(TrainConfig.from_dict(recorded))) == essential(asdict(config))


def lineage(record: dict) -> list[dict]:
    """The earlier cycles a run started from (`TrainConfig.init` a weight file), newest first,
    each as the record saved in that file. Refuses a chain that does not begin from scratch with
    edgesr (a foreign or official file, whose record is missing): shipped weights never do."""
    chain, source = [], record.get("init_source")
    while source is not None:
        if source.get("record") is None:
            raise SystemExit(f"{record['id']}: started from {source['file']}, which edgesr did not train;"
                             " shipped weights start from scratch")
        chain.append({**source["record"], "sha256": source["sha256"]})
        source = source["record"].get("init_source")
    if chain and chain[-1]["config"]["init"] not in INIT_KINDS:
        raise SystemExit(f"{record['id']}: cannot trace its start past {chain[-1]['sha256'][:12]}")
    return chain


def measure(model_id: str, weights: Path, record: dict, sets: list[str], reference: str | None) -> dict:
    """The manifest entry of trained weights: metrics here and, given, the official ones."""
    ours = evaluate([create_model(model_id, weights=weights)], sets).table[model_id]
    entry = {
        "file": f"{model_id}.safetensors",
        "recipe": record["config"],
        "data": "+".join(Path(d).name for d in record["config"]["data"]),
        "train_seconds": record["train_seconds"],
        "threads": record["threads"],
        "device": record.get("device", record["config"]["device"]),  # sidecars before "device"
        "metrics": {k: round(v, 5) for k, v in ours.items() if k.startswith(("psnr_", "ssim_"))},
    }
    chain = lineage(record)
    if chain:  # earlier cycles: their steps, seconds (when recorded) and configs
        entry["earlier_cycles"] = [{"sha256": c["sha256"], "steps": c["step"], "recipe": c["config"],
                                    "train_seconds": c.get("train_seconds")} for c in chain]
    line = f"{model_id}: trained in {record['train_seconds']:.0f} s; ours " + " ".join(
        f"{k} {v:.4f}" for k, v in entry["metrics"].items())
    if reference and (Path(reference) / f"{model_id}.model").exists():
        theirs = evaluate([create_model(model_id, weights=Path(reference) / f"{model_id}.model")],
                          sets).table[model_id]
        entry["official_same_images"] = {k: round(v, 5) for k, v in theirs.items()
                                         if k.startswith(("psnr_", "ssim_"))}
        line += "; ours - official " + " ".join(
            f"{k} {ours[k] - theirs[k]:+.4f}" for k in entry["metrics"] if k.startswith("psnr_"))
    print(line, flush=True)
    return entry


def ship(manifest: dict, manifest_path: Path, weights: Path, entry: dict) -> None:
    """Copy the weights into the package and record their entry (atomically)."""
    target = SHIPPED_DIR / entry["file"]
    SHIPPED_DIR.mkdir(exist_ok=True)
    shutil.copyfile(weights, target)
    entry["sha256"] = file_digest(target)
    manifest["models"][entry["recipe"]["model_id"]] = entry
    manifest["defaults"] = {str(s): i for s, i in DEFAULTS.items() if i in manifest["models"]}
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="training images (folder or dataset name); not needed with --adopt alone")
    parser.add_argument("--set5", required=True)
    parser.add_argument("--set14", required=True)
    parser.add_argument("--reference", help="folder of official <id>.model files, for comparison only")
    parser.add_argument("--runs", default="runs/zoo", help="training outputs and checkpoints")
    parser.add_argument("--only", nargs="*", help="train only these ids")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--adopt", nargs="*", default=[], metavar="RUN_DIR",
                        help="ship runs trained elsewhere (folders holding <id>.safetensors and <id>.json)")
    args = parser.parse_args()

    manifest_path = SHIPPED_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}, "defaults": {}}
    sets = [args.set5, args.set14]
    for folder in map(Path, args.adopt):
        sidecars = [p for p in folder.glob("*.json") if (folder / f"{p.stem}.safetensors").exists()]
        if len(sidecars) != 1:
            raise SystemExit(f"{folder}: expected one <id>.json beside its <id>.safetensors, found {len(sidecars)}")
        record = json.loads(sidecars[0].read_text())
        weights = folder / f"{record['id']}.safetensors"
        ship(manifest, manifest_path, weights, measure(record["id"], weights, record, sets, args.reference))
    to_train = args.only or ([] if args.adopt else ZOO)
    if to_train and not args.data:
        raise SystemExit("--data is needed to train (only --adopt works without it)")
    for model_id in to_train:
        family = ModelSpec.parse(model_id).family
        recipe = {**recipe_for(model_id), **DATA_SETTINGS.get(family, {})}
        config = TrainConfig(model_id, data=[args.data], val=[args.set5], threads=args.threads,
                             device=args.device, **recipe)
        known = manifest["models"].get(model_id)
        if known and same_recipe(known["recipe"], config):
            print(f"{model_id}: already shipped with this recipe, skipped")
            continue
        runs = Path(args.runs)
        resume = (runs / f"{model_id}.ckpt.pt").exists()
        result = train(config, out=runs, resume=resume)
        ship(manifest, manifest_path, result.weights,
             measure(model_id, result.weights, result.record, sets, args.reference))


if __name__ == "__main__":
    sys.exit(main())
