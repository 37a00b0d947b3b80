"""Shipped weights: what the manifest promises is what the files give."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import pytest

import edgesr
from edgesr import EdgesrError, create_model
from edgesr.weights import SHIPPED_DIR, default_model_id, read_state_dict, shipped_manifest

MANIFEST = shipped_manifest()
SHIPPED = sorted(MANIFEST["models"])


def test_something_ships_for_every_scale():
    assert {2, 3, 4} <= {edgesr.ModelSpec.parse(i).scale for i in SHIPPED}
    for scale in (2, 3, 4):
        assert default_model_id(scale) in SHIPPED


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_file_matches_its_manifest_entry(model_id):
    entry = MANIFEST["models"][model_id]
    path = SHIPPED_DIR / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    _, metadata = read_state_dict(path)
    assert metadata["model_id"] == model_id
    model = create_model(model_id, pretrained=True)  # strict load
    assert model.spec.id == model_id
    assert {"psnr_Set5", "psnr_Set14", "ssim_Set5", "ssim_Set14"} <= set(entry["metrics"])
    assert entry["recipe"]["model_id"] == model_id


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_weights_were_trained_from_scratch(model_id):
    """Never from the official files: the first cycle of every shipped model starts from a built-in start."""
    from edgesr.train import INIT_KINDS

    entry = MANIFEST["models"][model_id]
    first = entry["earlier_cycles"][-1]["recipe"] if "earlier_cycles" in entry else entry["recipe"]
    assert first.get("init", "paper") in INIT_KINDS


def _train_zoo():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_zoo", Path(__file__).parents[1] / "benchmarks" / "train_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_adoption_follows_a_chain_of_cycles_back_to_scratch_and_refuses_foreign_starts():
    lineage = _train_zoo().lineage
    scratch = {"config": {"init": "bicubic"}, "step": 30000, "val": {}}
    second = {"config": {"init": "runs/a/X.safetensors"}, "step": 15000, "val": {},
              "init_source": {"file": "X.safetensors", "sha256": "a" * 64, "record": scratch}}
    record = {"id": "X", "init_source": {"file": "X.safetensors", "sha256": "b" * 64, "record": second}}
    assert [c["step"] for c in lineage(record)] == [15000, 30000]
    assert lineage({"id": "X", "init_source": None}) == []
    official = {"id": "X", "init_source": {"file": "X.model", "sha256": "c" * 64, "record": None}}
    with pytest.raises(SystemExit, match="X.model, which edgesr did not train"):
        lineage(official)
    untraced = {"id": "X", "init_source": {"file": "X.safetensors", "sha256": "d" * 64,
                                           "record": {"config": {"init": "old.safetensors"}, "step": 5}}}
    with pytest.raises(SystemExit, match="cannot trace its start"):
        lineage(untraced)


def test_ids_without_shipped_weights_say_what_ships():
    with pytest.raises(EdgesrError, match="no shipped weights for eSR-TM_s2_K3_C1; shipped: "):
        create_model("eSR-TM_s2_K3_C1", pretrained=True)


def test_the_package_with_its_weights_stays_under_5_mb():
    root = Path(edgesr.__file__).parent
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 5 * 1024 * 1024


def test_upscale_default_uses_the_shipped_model(tmp_path):
    from edgesr.engine import Upscaler
    from edgesr.upscale_files import default_model

    assert default_model(2) == default_model_id(2) != "Bicubic_s2"
    image = np.random.default_rng(0).integers(0, 256, (6, 5, 3)).astype(np.uint8)
    assert Upscaler(default_model(3), pretrained=True).upscale(image).shape == (18, 15, 3)


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_metrics_are_reproduced_and_match_the_official_weights(model_id, reference_dir, datasets_dir):
    from edgesr.evaluate import evaluate

    entry = MANIFEST["models"][model_id]
    sets = [str(datasets_dir / "Set5"), str(datasets_dir / "Set14")]
    ours = evaluate([create_model(model_id, pretrained=True)], sets).table[model_id]
    theirs = evaluate([create_model(model_id, weights=reference_dir / "weights" / f"{model_id}.model")],
                      sets).table[model_id]
    for name in ("Set5", "Set14"):
        assert ours[f"psnr_{name}"] == pytest.approx(entry["metrics"][f"psnr_{name}"], abs=1e-3)
        assert ours[f"psnr_{name}"] >= theirs[f"psnr_{name}"] - 0.05, name


def test_load_model_takes_the_file_given_else_the_shipped_weights(tmp_path):
    from edgesr import load_model
    from edgesr.weights import save_weights

    shipped = create_model("eSR-MAX_s2_K3_C2", pretrained=True).state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in load_model("eSR-MAX_s2_K3_C2").state_dict().items())
    other = create_model("eSR-MAX_s2_K3_C2")
    save_weights(other, tmp_path / "mine.safetensors")
    mine = load_model("eSR-MAX_s2_K3_C2", tmp_path / "mine.safetensors").state_dict()
    assert all(torch.equal(v, mine[k]) for k, v in other.state_dict().items())
    assert load_model("Bicubic_s3").spec.id == "Bicubic_s3"
    with pytest.raises(EdgesrError, match="no shipped weights for eSR-TM_s2_K3_C1"):
        load_model("eSR-TM_s2_K3_C1")
