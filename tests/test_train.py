"""Training: samplers, the loop, whitening, checkpoints and bit-for-bit resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from edgesr import EdgesrError, create_model
from edgesr.data.patches import LumaPair, NeighbourhoodSampler, dihedral
from edgesr.train import TrainConfig, train, whitening


def synthetic_images(folder, count=3, size=72, seed=0):
    """Smooth shapes with sharp edges: something a 1-layer upscaler can learn quickly."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        image = np.zeros((size, size))
        for _ in range(6):
            cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(6, 20)]
            angle = rng.uniform(0, np.pi)
            band = np.abs((yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)) < r / 3
            image += rng.uniform(40, 120) * (((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) | band)
        image = np.clip(image + 20, 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([image, image // 2 + 60, 255 - image], -1)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    return synthetic_images(root / "train", seed=0), synthetic_images(root / "val", count=2, seed=1)


def test_neighbourhoods_and_blocks_match_the_full_model():
    rng = np.random.default_rng(0)
    pair = LumaPair("x", hr=rng.random((10, 12)).astype(np.float32), lr=rng.random((5, 6)).astype(np.float32))
    sampler = NeighbourhoodSampler([pair], scale=2, size=3, batch_size=64, seed=3, augment=False)
    columns, blocks = sampler.batch(0)
    lr = torch.from_numpy(pair.lr)[None, None]
    unfolded = F.unfold(lr, 3, padding=1)[0].T  # (H*W, 9), zero padded like the model
    hr_blocks = torch.from_numpy(pair.hr).reshape(5, 2, 6, 2).permute(0, 2, 1, 3).reshape(30, 4)
    for column, block in zip(columns, blocks):
        matches = ((unfolded - column).abs().sum(1) == 0).nonzero()
        assert any(torch.equal(hr_blocks[i], block) for i in matches[:, 0]), "block not aligned with LR pixel"


def test_augmented_neighbourhoods_are_flips_and_rotations_of_real_ones():
    rng = np.random.default_rng(1)
    pair = LumaPair("x", hr=rng.random((8, 8)).astype(np.float32), lr=rng.random((4, 4)).astype(np.float32))
    sampler = NeighbourhoodSampler([pair], scale=2, size=3, batch_size=200, seed=0)
    columns, blocks = sampler.batch(5)
    lr = F.pad(torch.from_numpy(pair.lr), (1, 1, 1, 1)).numpy()
    originals = []
    for y in range(4):
        for x in range(4):
            hood, block = lr[y:y + 3, x:x + 3], pair.hr[2 * y:2 * y + 2, 2 * x:2 * x + 2]
            originals += [(dihedral(hood, t).ravel(), dihedral(block, t).ravel()) for t in range(8)]
    for column, block in zip(columns.numpy(), blocks.numpy()):
        assert any(np.array_equal(column, a) and np.array_equal(block, b) for a, b in originals)


def test_batches_are_a_pure_function_of_seed_and_step():
    rng = np.random.default_rng(2)
    pair = LumaPair("x", hr=rng.random((12, 12)).astype(np.float32), lr=rng.random((6, 6)).astype(np.float32))
    a = NeighbourhoodSampler([pair], 2, 5, 32, seed=7)
    b = NeighbourhoodSampler([pair], 2, 5, 32, seed=7)
    assert torch.equal(a.batch(11)[0], b.batch(11)[0]) and not torch.equal(a.batch(11)[0], a.batch(12)[0])


def test_whitening_makes_the_second_moment_the_identity():
    columns = torch.randn(5000, 9) @ torch.randn(9, 9) + 3.0
    inverse_root, root = whitening(columns)
    white = columns.double() @ inverse_root.double()
    torch.testing.assert_close(white.T @ white / 5000, torch.eye(9, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(inverse_root @ root, torch.eye(9), atol=1e-3, rtol=0)


def test_training_lowers_the_loss_and_beats_the_initialisation(image_sets, tmp_path):
    from edgesr.evaluate import evaluate

    train_dir, val_dir = image_sets
    config = TrainConfig("eSR-TM_s2_K3_C2", data=[str(train_dir)], val=[str(val_dir)], steps=60,
                         batch_size=1024, val_every=30, lr=1e-2, threads=1)
    result = train(config, out=tmp_path)
    history = result.record["history"]
    torch.manual_seed(0)
    initial = evaluate([create_model("eSR-TM_s2_K3_C2")], [str(val_dir)]).table["eSR-TM_s2_K3_C2"]
    final = create_model("eSR-TM_s2_K3_C2", weights=result.weights)
    final_psnr = evaluate([final], [str(val_dir)]).table["eSR-TM_s2_K3_C2"]["psnr_val"]
    assert final_psnr > initial["psnr_val"] + 1.0
    assert history[-1]["psnr_val"] == pytest.approx(final_psnr, abs=1e-6)
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["id"] == "eSR-TM_s2_K3_C2" and sidecar["steps"] == 60 and sidecar["config"]["seed"] == 0


def test_loss_falls(image_sets, tmp_path):
    train_dir, val_dir = image_sets
    losses = []
    config = TrainConfig("eSR-MAX_s2_K3_C2", data=[str(train_dir)], val=[str(val_dir)], steps=40,
                         batch_size=512, val_every=40, lr=1e-2, threads=1)
    train(config, out=tmp_path, progress=lambda e: losses.append(e.values["loss"]) if e.kind == "step" else None)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def stop_at(step):
    """A progress callback that interrupts training (like Ctrl-C) after optimiser step ``step``."""
    def callback(event):
        if event.kind == "step" and event.done == step:
            raise KeyboardInterrupt
    return callback


def test_resumed_run_equals_an_uninterrupted_one(image_sets, tmp_path):
    train_dir, val_dir = image_sets
    config = TrainConfig("eSR-TR_s2_K3_C2", data=[str(train_dir)], val=[str(val_dir)], steps=30,
                         batch_size=256, val_every=10, threads=1)
    whole = train(config, out=tmp_path / "whole")
    with pytest.raises(EdgesrError, match="interrupted at step 25.*--resume"):
        train(config, out=tmp_path / "split", progress=stop_at(25))
    assert not (tmp_path / "split" / "eSR-TR_s2_K3_C2.safetensors").exists()
    resumed = train(config, out=tmp_path / "split", resume=True)
    a = create_model("eSR-TR_s2_K3_C2", weights=whole.weights).filter.weight
    b = create_model("eSR-TR_s2_K3_C2", weights=resumed.weights).filter.weight
    assert torch.equal(a, b)


def test_deep_model_resumes_with_every_layer_whitened(image_sets, tmp_path):
    train_dir, val_dir = image_sets
    config = TrainConfig("ESPCN_s2_D4_S6", data=[str(train_dir)], val=[str(val_dir)], steps=12,
                         batch_size=4, patch_size=12, val_every=4, threads=1)
    assert config.init == "bicubic"
    whole = train(config, out=tmp_path / "whole")
    with pytest.raises(EdgesrError, match="interrupted at step 10"):
        train(config, out=tmp_path / "split", progress=stop_at(10))
    checkpoint = torch.load(tmp_path / "split" / "ESPCN_s2_D4_S6.ckpt.pt", weights_only=True)
    assert [m[0].shape for m in checkpoint["whitening"]] == [(25, 25), (36, 36), (54, 54)]
    resumed = train(config, out=tmp_path / "split", resume=True)
    a = create_model("ESPCN_s2_D4_S6", weights=whole.weights).state_dict()
    b = create_model("ESPCN_s2_D4_S6", weights=resumed.weights).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_can_start_from_weights_and_keeps_their_lineage(image_sets, tmp_path):
    train_dir, val_dir = image_sets
    first = train(TrainConfig("ESPCN_s2_D4_S6", data=[str(train_dir)], val=[str(val_dir)], steps=6,
                              batch_size=4, patch_size=12, val_every=6, threads=1), out=tmp_path / "first")
    again = TrainConfig("ESPCN_s2_D4_S6", data=[str(train_dir)], val=[str(val_dir)], steps=1, lr=1e-9,
                        batch_size=4, patch_size=12, val_every=1, threads=1, init=str(first.weights))
    second = train(again, out=tmp_path / "second")
    a = create_model("ESPCN_s2_D4_S6", weights=first.weights).state_dict()
    b = create_model("ESPCN_s2_D4_S6", weights=second.weights).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=2e-5) for k in a)  # started there (lr ~0: stayed)
    source = second.record["init_source"]
    assert source["file"] == "ESPCN_s2_D4_S6.safetensors" and len(source["sha256"]) == 64
    assert source["record"]["step"] == 6 and source["record"]["init_source"] is None  # from scratch
    assert json.loads((tmp_path / "second" / "ESPCN_s2_D4_S6.json").read_text())["init_source"] == source


def test_a_bad_start_or_validation_set_fails_before_training(image_sets, tmp_path):
    train_dir, val_dir = image_sets
    common = dict(data=[str(train_dir)], steps=2, batch_size=4, patch_size=12, threads=1)
    with pytest.raises(EdgesrError, match="missing.safetensors: --init takes"):
        train(TrainConfig("ESPCN_s2_D4_S6", val=[str(val_dir)], init=str(tmp_path / "missing.safetensors"),
                          **common), out=tmp_path / "a")
    first = train(TrainConfig("ESPCN_s2_D4_S6", val=[str(val_dir)], **common), out=tmp_path / "b")
    with pytest.raises(EdgesrError, match="holds weights for ESPCN_s2_D4_S6, not ESPCN_s3_D4_S6"):
        train(TrainConfig("ESPCN_s3_D4_S6", val=[str(val_dir)], init=str(first.weights), **common),
              out=tmp_path / "c")
    with pytest.raises(EdgesrError, match="no_such_set"):
        train(TrainConfig("ESPCN_s2_D4_S6", val=["no_such_set"], **common), out=tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "acd")  # nothing half-made


def test_existing_run_is_not_overwritten_without_resume(image_sets, tmp_path):
    train_dir, val_dir = image_sets
    config = TrainConfig("eSR-MAX_s2_K3_C1", data=[str(train_dir)], val=[str(val_dir)], steps=2,
                         batch_size=64, val_every=1, threads=1)
    train(config, out=tmp_path)
    with pytest.raises(EdgesrError, match="already exists.*--resume"):
        train(config, out=tmp_path)
    changed = TrainConfig("eSR-MAX_s2_K3_C1", data=[str(train_dir)], val=[str(val_dir)], steps=2,
                          batch_size=64, val_every=1, threads=1, lr=1e-4)
    with pytest.raises(EdgesrError, match=r"config differs.*\(lr\)"):
        train(changed, out=tmp_path, resume=True)


@pytest.mark.parametrize("model_id", ["ESPCN_s2_D4_S6", "eSR-CNN_s2_C2_D3_S3", "FSRCNN_s2_D6_S1_M1"])
def test_patch_trained_families_train_and_save_plain_weights(image_sets, tmp_path, model_id):
    train_dir, val_dir = image_sets
    config = TrainConfig(model_id, data=[str(train_dir)], val=[str(val_dir)], steps=3, batch_size=4,
                         patch_size=12, val_every=3, threads=1)
    result = train(config, out=tmp_path)
    model = create_model(model_id, weights=result.weights)  # strict load: whitening folded away
    assert model(torch.rand(1, 1, 5, 5)).shape == (1, 1, 10, 10)


def test_bicubic_cannot_be_trained():
    with pytest.raises(EdgesrError, match="no trainable weights"):
        TrainConfig("Bicubic_s2")


def test_cli_trains_with_the_recipe_of_the_family(image_sets, tmp_path):
    from typer.testing import CliRunner

    from edgesr.cli import app

    train_dir, val_dir = image_sets
    result = CliRunner().invoke(app, ["train", "eSR-CNN_s2_C2_D1_S3", "--data", str(train_dir), "--val",
                                      str(val_dir), "--steps", "4", "--val-every", "4", "--pre-scale", "1,0.9",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "eSR-CNN_s2_C2_D1_S3.json").read_text())["config"]
    assert (config["batch_size"], config["patch_size"], config["lr"]) == (64, 32, 5e-4)  # eSR-CNN's recipe
    assert config["pre_scale"] == [1.0, 0.9]
    assert config["amp"] is False and config["init"] == "bicubic"
    assert TrainConfig.from_dict({k: v for k, v in config.items() if k != "amp"}).amp is False


def test_fp32_training_turns_tf32_off_on_cuda_only_and_restores_it():
    from edgesr.train import _NoTF32Convolutions

    before = torch.backends.cudnn.allow_tf32
    guard = _NoTF32Convolutions(torch.device("cuda"), enabled=True)
    with guard:
        assert torch.backends.cudnn.allow_tf32 is False
        with guard:  # the loop re-enters it around validation
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before
    with _NoTF32Convolutions(torch.device("cpu"), enabled=True):
        assert torch.backends.cudnn.allow_tf32 == before


def test_config_from_recipe_keeps_the_recipe_where_an_override_is_none():
    from edgesr.train import TrainConfig, recipe_for

    config = TrainConfig.from_recipe("eSR-CNN_s2_C2_D3_S3", steps=7, lr=None, seed=3)
    recipe = recipe_for("eSR-CNN_s2_C2_D3_S3")
    assert (config.steps, config.lr, config.batch_size, config.seed) == (7, recipe["lr"], recipe["batch_size"], 3)
