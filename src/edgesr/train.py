"""Training any model id on single-channel luma: `TrainConfig` and `train`.

The recipe (measured in ``benchmarks/train_recipe.py``): LR by the same MATLAB-compatible bicubic
as evaluation, flips and 90-degree rotations, Adam with a cosine schedule, MSE, fixed seeds, and
what makes training on a CPU fast and reliable:

* **Whitened first layer.** The first convolution sees K x K neighbourhoods of natural images,
  whose second-moment matrix has a condition number around 1e5 (DC dominates). Plain gradient
  steps crawl along the weak directions; training the filters in whitened coordinates
  (``weight = U @ M^-1/2``, a `torch.nn.utils.parametrize` parametrisation removed before
  saving) reaches the official eSR-TM_s2_K7_C16 quality in about 8x fewer steps. Deep models
  whiten every later convolution too, on the hidden features of a batch at the start.
* **Bicubic start for ESPCN and eSR-CNN** (`edgesr.warm_start`): from Xavier weights their
  tanh/sigmoid stacks stall below bicubic quality.
* **Pixels, not patches, for one-layer models.** eSR-MAX/TM/TR map each LR neighbourhood to its
  s x s HR block independently, so batches are independent random pixels
  (`NeighbourhoodSampler`) and the forward pass is one GEMM (`forward_columns`).

Runs are resumable bit for bit (same threads): batches are a pure function of (seed, step), and
the checkpoint holds the model, optimiser, whitening and history.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from edgesr.atomic import atomic_path, write_text_atomic
from edgesr.errors import EdgesrError
from edgesr.models import ModelSpec, create_model, family_of
from edgesr.progress import Progress, Reporter
from edgesr.warm_start import SUPPORTED as BICUBIC_START
from edgesr.warm_start import bicubic_start
from edgesr.weights import WEIGHT_SUFFIXES, load_weights_into, read_state_dict, save_weights

CHECKPOINT_VERSION = 2
#: The starting points `TrainConfig.init` names; anything else is a weight file.
INIT_KINDS = ("auto", "paper", "bicubic")

#: The measured recipe per kind of model (benchmarks/train_recipe.md); `TrainConfig` keywords.
#: eSR-CNN and ESPCN take more and larger patches than FSRCNN: 64 of 32x32 beat 32 of 24x24 by
#: 0.07 dB at equal steps (eSR-CNN_s2_C4_D3_S9; ESPCN_s4_D40_S32 on T91: +0.07 at 3000 steps), and
#: eSR-CNN still gained at 30000 steps. A 4x higher peak lr looked better in 3000-step probes of
#: ESPCN but collapsed ESPCN_s3_D22_S32 and ESPCN_s4_D40_S32 within 5000 steps of 30000.
#: FSRCNN keeps the first deep recipe.
RECIPES = {
    "one_layer": {"steps": 10000, "batch_size": 8192, "lr": 3e-3},
    "deep": {"steps": 20000, "batch_size": 32, "patch_size": 24, "lr": 5e-4},
    "espcn": {"steps": 30000, "batch_size": 64, "patch_size": 32, "lr": 5e-4},
    "esr_cnn": {"steps": 30000, "batch_size": 64, "patch_size": 32, "lr": 5e-4},
}


def recipe_kind(model_id: str) -> str:
    """The `RECIPES` key of an id (its family's `Family.recipe`): "one_layer" for eSR-MAX/TM/TR,
    "espcn" for ESPCN, "esr_cnn" for eSR-CNN and "deep" for FSRCNN."""
    kind = family_of(model_id).recipe
    if kind is None:
        raise EdgesrError(f"{model_id} has no trainable weights (a fixed kernel)")
    return kind


def recipe_kinds(model_ids: Iterable[str]) -> set[str]:
    """The `RECIPES` keys that train these ids (Bicubic, a fixed kernel, needs none)."""
    return {recipe_kind(i) for i in model_ids if family_of(i).learned}


def recipe_for(model_id: str) -> dict:
    """The shipped recipe for an id as `TrainConfig` keywords (a fresh dict, safe to change).

    >>> recipe_for("eSR-TM_s2_K7_C16")["steps"]
    10000
    """
    return dict(RECIPES[recipe_kind(model_id)])


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved with every checkpoint and output.

    Attributes:
        model_id: the id to train, e.g. ``eSR-TM_s2_K7_C16``.
        data: training datasets (catalog names, registered names or folders).
        val: validation sets, evaluated with the paper protocol every ``val_every`` steps.
        steps: optimiser steps.
        batch_size: pixels per step for one-layer models, patches per step for the others
            (None: 8192 pixels or 32 patches).
        patch_size: LR patch side for patch-trained families.
        lr: peak learning rate (cosine decay to 0, after ``warmup`` linear steps).
        loss: "l2" (MSE, what PSNR measures) or "l1".
        whiten: train every convolution in whitened coordinates of its input (module docstring).
        sampling: "auto" (pixels for one-layer models, patches otherwise), "pixels" or "patches".
        init: starting weights: "paper" (the model's own: Xavier, plus a centre tap for
            eSR-MAX/TM/TR), "bicubic" (`edgesr.warm_start`, ESPCN and eSR-CNN only), "auto"
            (bicubic where supported, else paper) or the path of a weight file of the same id:
            fine-tuning on other data, or a second cosine cycle of a finished run. The record keeps
            that file's sha256 and, for edgesr's own files, its training record (`init_source`).
        pre_scale: resize training images first: one factor (e.g. 0.5 against JPEG artefacts) or
            several, each a copy of the data (multi-scale augmentation, `edgesr.data.patches.pre_scales`).
        degrade: LR degradation of the training pairs: "matlab" (`edgesr.resize.imresize`, what the
            shipped weights were trained with) or "torch" (antialiased bicubic). Evaluation and
            validation default to "torch" (`edgesr.evaluate.DEFAULT_RESIZE`, the protocol that
            reproduces the paper's table); scored on "matlab" LR instead, the shipped models lose
            0.001-0.021 dB (README, Training).
        seed: fixes initialisation, batches and everything else.
        val_every: steps between validations and checkpoints.
        device: "cpu", "cuda" or "auto".
        amp: on CUDA, train patch-sampled models with fp16 autocast and gradient scaling. Off by
            default: on an H100 it cost eSR-CNN_s2_C4_D3_S9 0.34 dB on Set5 at equal steps and was
            no faster (these models are bound by kernel launches); off trains in fp32 with TF32
            off. CPU always trains in fp32.
        threads: torch CPU threads (None: torch's default).
    """

    model_id: str
    data: list[str] = field(default_factory=lambda: ["T91", "General100"])
    val: list[str] = field(default_factory=lambda: ["Set5"])
    steps: int = 10000
    batch_size: int | None = None
    patch_size: int = 24
    lr: float = 3e-3
    warmup: int = 0
    loss: str = "l2"
    whiten: bool = True
    sampling: str = "auto"
    init: str = "auto"
    pre_scale: float | list[float] | None = None
    degrade: str = "matlab"
    seed: int = 0
    val_every: int = 1000
    device: str = "auto"
    amp: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        self.model_id = ModelSpec.parse(self.model_id).id
        if self.loss not in ("l1", "l2"):
            raise EdgesrError(f"loss must be l1 or l2, got {self.loss!r}")
        if self.sampling not in ("auto", "pixels", "patches"):
            raise EdgesrError(f"sampling must be auto, pixels or patches, got {self.sampling!r}")
        if self.sampling == "pixels" and not self._family_is_one_layer():
            raise EdgesrError(f"{self.model_id}: pixel sampling needs a one-layer model (eSR-MAX/TM/TR)")
        family = family_of(self.model_id)
        self.init = str(self.init)  # or a path, whose file is checked when a run starts (a resume no longer needs it)
        if self.init not in INIT_KINDS and Path(self.init).suffix not in WEIGHT_SUFFIXES:
            raise EdgesrError(f"init must be auto, paper, bicubic or a weight file ({', '.join(WEIGHT_SUFFIXES)}),"
                              f" got {self.init!r}")
        if self.init == "bicubic" and not family.bicubic_start:
            raise EdgesrError(f"{self.model_id}: the bicubic start supports {', '.join(BICUBIC_START)} only")
        if self.init == "auto":  # record the effective value, like batch_size
            self.init = "bicubic" if family.bicubic_start else "paper"
        if self.pre_scale is not None and not isinstance(self.pre_scale, (int, float)):
            factors = [float(f) for f in self.pre_scale]  # a list, as JSON gives it back on resume
            self.pre_scale = factors[0] if len(factors) == 1 else factors
        from edgesr.data.patches import pre_scales
        pre_scales(self.pre_scale)  # validates
        if self.batch_size is None:  # record the effective value, so equal runs compare equal
            self.batch_size = 8192 if self.pixel_sampling else 32
        if self.steps < 1 or self.val_every < 1 or self.lr <= 0:
            raise EdgesrError("steps, val_every and lr must be positive")
        if self.batch_size < 1 or self.patch_size < 1:
            raise EdgesrError(f"--batch-size ({self.batch_size}) and --patch-size ({self.patch_size})"
                              " must be positive")
        if not family.learned:
            raise EdgesrError(f"{self.model_id} has no trainable weights (a fixed bicubic kernel)")

    def _family_is_one_layer(self) -> bool:
        return family_of(self.model_id).pixel_training

    @property
    def pixel_sampling(self) -> bool:
        """Train on independent pixels (one GEMM per step) rather than on patches."""
        return self.sampling == "pixels" or (self.sampling == "auto" and self._family_is_one_layer())

    @classmethod
    def from_recipe(cls, model_id: str, **overrides: object) -> TrainConfig:
        """The measured recipe of an id (`recipe_for`) with ``overrides`` on top; an override of
        None keeps the recipe's value (what an unset command-line option passes).

        >>> TrainConfig.from_recipe("eSR-TM_s2_K7_C16", steps=50, lr=None).lr
        0.003
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(model_id, **{**recipe_for(model_id), **given})

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {"init": "paper", **values}  # configs saved before `init` existed started so
        return cls(**{k: v for k, v in values.items() if k in known})


class Whitened(nn.Module):
    """Parametrisation ``weight = U @ M^-1/2`` of a conv weight (out, in, k, k), flattened as unfold."""

    def __init__(self, inverse_root: torch.Tensor, root: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("inverse_root", inverse_root)
        self.register_buffer("root", root)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return (u.reshape(u.shape[0], -1) @ self.inverse_root).reshape(u.shape)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return (weight.reshape(weight.shape[0], -1) @ self.root).reshape(weight.shape)


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The convolution that reads the image (1 input channel)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 1:
            return module
    raise EdgesrError(f"{model.spec.id}: no first convolution to whiten")


def whitened_layers(model: nn.Module) -> list[nn.Conv2d]:
    """The convolutions trained in whitened coordinates: the one reading the image first, then
    (deep models) every later `nn.Conv2d` in order. Transposed convolutions stay plain."""
    first = first_conv(model)
    return [first] + [m for m in model.modules() if isinstance(m, nn.Conv2d) and m is not first]


def hidden_whitening(model: nn.Module, sample: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`whitening` of the inputs of every whitened layer after the first, on a batch of LR patches.

    The hidden features are as correlated as pixels are (smooth, with a large mean), so their
    layers crawl too; measured on eSR-CNN_s2_C4_D3_S9, 3000 steps: +0.64 dB on Set5. Their
    weakest directions are amplified at most 100x (``floor`` 1e-4): with pixels' 1e-7 the same
    run collapsed from 35.5 to 25.8 dB at step 3000 of 20000.
    """
    layers = whitened_layers(model)[1:]
    inputs: dict[nn.Module, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(lambda module, args, _: inputs.__setitem__(module, args[0].detach()))
             for layer in layers]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for hook in hooks:
            hook.remove()
    matrices = []
    for layer in layers:
        columns = F.unfold(inputs[layer], layer.kernel_size, dilation=layer.dilation, padding=layer.padding,
                           stride=layer.stride)
        matrices.append(whitening(columns.transpose(1, 2).reshape(-1, columns.shape[1]), floor=1e-4))
    return matrices


def _saved_whitening(saved: object) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A checkpoint's matrices: a list of pairs, or (version 1) one pair for the first layer."""
    if isinstance(saved, tuple | list) and len(saved) == 2 and isinstance(saved[0], torch.Tensor):
        return [tuple(saved)]
    return [tuple(pair) for pair in saved]


def whitening(columns: torch.Tensor, floor: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """M^-1/2 and M^1/2 of the second-moment matrix of (N, k*k) neighbourhoods (float64 maths)."""
    x = columns.double()
    moment = x.T @ x / x.shape[0]
    values, vectors = torch.linalg.eigh(moment)
    values = values.clamp_min(values.max() * floor)
    inverse_root = vectors @ torch.diag(values.rsqrt()) @ vectors.T
    root = vectors @ torch.diag(values.sqrt()) @ vectors.T
    return inverse_root.float(), root.float()


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to 0 at ``steps``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainResult:
    """Where a run wrote its files and what it measured."""

    weights: Path
    best_weights: Path
    sidecar: Path
    record: dict
    skipped: list[str] = field(default_factory=list)  # training files left out, one line each


def output_paths(out: Path, model_id: str) -> dict[str, Path]:
    return {"weights": out / f"{model_id}.safetensors", "best": out / f"{model_id}.best.safetensors",
            "sidecar": out / f"{model_id}.json", "checkpoint": out / f"{model_id}.ckpt.pt"}


def train(config: TrainConfig, out: str | os.PathLike = ".", resume: bool = False,
          progress: Reporter | None = None) -> TrainResult:
    """Train ``config.model_id``; write weights, best weights, a JSON sidecar and a checkpoint.

    Args:
        config: the run's `TrainConfig`.
        out: output folder (created).
        resume: continue from ``<out>/<id>.ckpt.pt``; the config must match the checkpoint's.
        progress: `edgesr.progress` reporter: a "step" event after every step (``done`` of
            ``total`` steps, values loss and lr) and a "validated" one after each validation
            (values: the scores and ``val_psnr``, their mean PSNR).
    Returns:
        a `TrainResult`; ``<id>.safetensors`` holds the last step's weights (not selected on the
        validation set), ``<id>.best.safetensors`` the best validated ones.
    """
    from edgesr.data.patches import NeighbourhoodSampler, PatchSampler, load_pairs
    from edgesr.engine import resolve_device

    out = Path(out)
    paths = output_paths(out, config.model_id)
    if paths["checkpoint"].exists() and not resume:
        raise EdgesrError(f"{paths['checkpoint']}: a run already exists here; pass --resume to continue it"
                          " or choose another --out")
    if resume and not paths["checkpoint"].exists():
        raise EdgesrError(f"{paths['checkpoint']}: no checkpoint to resume")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    spec = ModelSpec.parse(config.model_id)

    checkpoint = None
    if resume:
        checkpoint = _load_checkpoint(paths["checkpoint"])
        saved = TrainConfig.from_dict(checkpoint["config"])
        if asdict(saved) != asdict(config):
            changed = [k for k, v in asdict(config).items() if asdict(saved)[k] != v]
            raise EdgesrError(f"{paths['checkpoint']}: config differs from the checkpoint's ({', '.join(changed)})")

    started = time.perf_counter()
    from edgesr.data.datasets import resolve_dataset
    for name in config.val:  # now, not at the first validation val_every steps into the run
        resolve_dataset(name)
    start_weights, source = None, None
    if checkpoint is None and config.init not in INIT_KINDS:  # before the data: a wrong file fails fast
        if not Path(config.init).is_file():
            raise EdgesrError(f"{config.init}: --init takes auto, paper, bicubic or an existing weight file")
        start_weights = load_weights_into(create_model(spec), config.init).state_dict()
        source = init_source(Path(config.init))
    skipped: list[str] = []
    pairs = load_pairs(config.data, spec.scale, config.pre_scale, config.degrade, skipped)
    out.mkdir(parents=True, exist_ok=True)  # only now: a run whose data is missing leaves no folder
    torch.manual_seed(config.seed)
    model = create_model(spec).train()
    if config.init == "bicubic":
        bicubic_start(model, seed=config.seed)
    elif start_weights is not None:
        model.load_state_dict(start_weights)
    conv = first_conv(model)
    pixels = NeighbourhoodSampler(pairs, spec.scale, conv.kernel_size[0], config.batch_size, config.seed)
    patches = None if config.pixel_sampling else PatchSampler(pairs, spec.scale, config.patch_size,
                                                             config.batch_size, config.seed)
    matrices: list[tuple[torch.Tensor, torch.Tensor]] = []
    if config.whiten:
        if checkpoint is not None:
            matrices = _saved_whitening(checkpoint["whitening"])
        else:
            matrices = [whitening(pixels.batch(0, batch_size=200_000)[0])]
            if patches is not None:
                matrices += hidden_whitening(model, patches.batch(0).lr)
        for layer, (inverse_root, root) in zip(whitened_layers(model), matrices, strict=True):
            parametrize.register_parametrization(layer, "weight", Whitened(inverse_root, root))
    amp = config.amp and device.type == "cuda" and not config.pixel_sampling
    if config.pixel_sampling:
        def batch_loss(step: int) -> torch.Tensor:
            columns, blocks = pixels.batch(step)
            prediction = model.forward_columns(columns.to(device))
            return _loss(config.loss, prediction, blocks.to(device))
    else:
        def batch_loss(step: int) -> torch.Tensor:
            low, high = patches.batch(step)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                prediction = model(low.to(device))
            return _loss(config.loss, prediction.float(), high.to(device))

    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)  # fp16 gradients underflow unscaled
    state = {"step": 0, "history": [], "best_psnr": -math.inf, "seconds": 0.0, "init_source": source}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        if checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        state = {**{k: checkpoint[k] for k in state if k != "init_source"},
                 "init_source": checkpoint.get("init_source")}
    # A resumed run that already validated keeps its last scores (it may have nothing left to do).
    last_val: dict[str, float] = _last_scores(state["history"])
    fp32 = _NoTF32Convolutions(device, enabled=not amp)
    data_seconds = time.perf_counter() - started
    clock = time.perf_counter()
    try:
        while state["step"] < config.steps:
            step = state["step"]
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, step)
            with fp32:
                loss = batch_loss(step)
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            state["step"] = step + 1
            if progress:
                progress(Progress("train", "step", config.model_id, done=step + 1, total=config.steps,
                                  values={"loss": loss.item(), "lr": optimiser.param_groups[0]["lr"]}))
            if state["step"] % config.val_every == 0 or state["step"] == config.steps:
                with fp32:
                    last_val = _validate(model, config)
                entry = {"step": state["step"], "loss": loss.item(), **last_val}
                state["history"].append(entry)
                if progress:
                    progress(Progress("train", "validated", config.model_id, done=state["step"], total=config.steps,
                                      values={**last_val, "val_psnr": _mean_psnr(last_val)}))
                if _mean_psnr(last_val) > state["best_psnr"]:
                    state["best_psnr"] = _mean_psnr(last_val)
                    _save_plain(model, paths["best"], config, state, last_val)
                state["seconds"] += time.perf_counter() - clock
                clock = time.perf_counter()
                _save_checkpoint(paths["checkpoint"], model, optimiser, scaler, config, state,
                                 matrices if config.whiten else None)
    except KeyboardInterrupt:
        if not paths["checkpoint"].exists():
            raise EdgesrError(f"interrupted at step {state['step']}, before the first checkpoint (written"
                              f" every --val-every {config.val_every} steps); nothing to resume") from None
        raise EdgesrError(f"interrupted at step {state['step']}; the last checkpoint"
                          f" ({paths['checkpoint']}) resumes with --resume") from None
    state["seconds"] += time.perf_counter() - clock
    record = _record(config, state, last_val, pairs, data_seconds, device)
    _save_plain(model, paths["weights"], config, state, last_val)
    write_text_atomic(paths["sidecar"], json.dumps(record, indent=1, sort_keys=True) + "\n")
    return TrainResult(paths["weights"], paths["best"], paths["sidecar"], record, skipped)


def _load_checkpoint(path: Path) -> dict:
    """A training checkpoint (tensors only: ``weights_only``); a damaged file is one clear error."""
    import pickle
    import zipfile

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            AttributeError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EdgesrError(f"{path}: not a readable checkpoint ({first}); remove it to start again") from None
    needed = {"config", "model", "optimiser", "step", "history", "best_psnr", "seconds"}
    if not isinstance(checkpoint, dict) or not needed <= set(checkpoint):
        raise EdgesrError(f"{path}: not an edgesr training checkpoint; remove it to start again")
    return checkpoint


def _last_scores(history: list[dict]) -> dict[str, float]:
    """The validation scores of the last history entry (empty before the first validation)."""
    if not history:
        return {}
    return {k: v for k, v in history[-1].items() if k.startswith(("psnr_", "ssim_"))}


class _NoTF32Convolutions:
    """On CUDA, keep cuDNN from rounding fp32 convolutions to TF32 (its 10-bit mantissa is fp16's,
    and fp16 autocast cost these models 0.34 dB, `TrainConfig.amp`); re-enterable, and leaves
    the caller's other cuDNN settings alone."""

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.active = device.type == "cuda" and enabled
        self.saved: list[bool] = []

    def __enter__(self) -> None:
        if self.active:
            self.saved.append(torch.backends.cudnn.allow_tf32)
            torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        if self.active:
            torch.backends.cudnn.allow_tf32 = self.saved.pop()


def _loss(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction, target) if kind == "l2" else F.l1_loss(prediction, target)


def _validate(model: nn.Module, config: TrainConfig) -> dict[str, float]:
    from edgesr.evaluate import evaluate

    was_training = model.training
    model.eval()
    try:
        row = evaluate([model], config.val, backend="torch").table[model.spec.id]  # reads live weights
    finally:
        model.train(was_training)
    return {k: v for k, v in row.items() if k.startswith(("psnr_", "ssim_"))}


def _mean_psnr(metrics: dict[str, float]) -> float:
    values = [v for k, v in metrics.items() if k.startswith("psnr_")]
    return sum(values) / len(values) if values else -math.inf


def _plain_copy(model: nn.Module) -> nn.Module:
    """A CPU copy of the model with the whitening folded into ordinary weights.

    Built from the state dict rather than by deepcopy + remove_parametrizations: a deep copy
    shares the injected parametrised class, and removing it there would strip the original.
    """
    state = {k: v for k, v in model.state_dict().items() if ".parametrizations." not in f".{k}"}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for tensor_name in module.parametrizations:
                state[f"{name}.{tensor_name}" if name else tensor_name] = getattr(module, tensor_name)
    plain = create_model(model.spec)
    plain.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
    return plain


def _save_plain(model: nn.Module, path: Path, config: TrainConfig, state: dict, metrics: dict) -> None:
    record = {"config": asdict(config), "step": state["step"], "val": metrics,
              "train_seconds": round(state["seconds"], 1), "init_source": state["init_source"]}
    save_weights(_plain_copy(model), path, record=record)


def _save_checkpoint(path: Path, model: nn.Module, optimiser: torch.optim.Optimizer,
                     scaler: torch.amp.GradScaler, config: TrainConfig, state: dict,
                     matrices: list[tuple[torch.Tensor, torch.Tensor]] | None) -> None:
    payload = {"version": CHECKPOINT_VERSION, "config": asdict(config), "model": model.state_dict(),
               "optimiser": optimiser.state_dict(), "scaler": scaler.state_dict(), "whitening": matrices,
               **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _record(config: TrainConfig, state: dict, metrics: dict, pairs: list, data_seconds: float,
            device: torch.device) -> dict:
    import edgesr

    return {
        "id": config.model_id,
        "config": asdict(config),
        "data": {"sets": config.data, "images": len(pairs)},
        "seed": config.seed,
        "steps": state["step"],
        "val": metrics,
        "best_val_psnr": state["best_psnr"],
        "history": state["history"],
        "train_seconds": round(state["seconds"], 1),
        "data_seconds": round(data_seconds, 1),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": {"edgesr": edgesr.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "machine": platform.machine(),
        "init_source": state["init_source"],
    }


def init_source(path: Path) -> dict:
    """Where a run started from a weight file: its name, sha256 and, when edgesr trained it, the
    record it was saved with (so a chain of cycles stays traceable to a from-scratch start)."""
    from edgesr.data.download import file_digest

    _, metadata = read_state_dict(path)
    record = json.loads(metadata["record"]) if metadata.get("format") == "edgesr" and "record" in metadata else None
    return {"file": path.name, "sha256": file_digest(path), "record": record}
