"""Load and save model weights: official ``.model`` files and edgesr ``.safetensors``.

Official files are PyTorch pickles; they are read with ``torch.load(weights_only=True)`` so a
hostile file cannot run code. edgesr's own format is safetensors with the model id and the
training record in its metadata.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgesr.atomic import atomic_path
from edgesr.errors import EdgesrError

#: Weight-file suffixes, in order of preference when a folder holds several for one id: edgesr's
#: safetensors (id and record inside), then the official PyTorch pickles.
WEIGHT_SUFFIXES = (".safetensors", ".model", ".pt", ".pth")

#: Weights edgesr trained itself and ships inside the package, listed in ``manifest.json``.
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a weight file into a CPU state dict and its metadata (empty for official files)."""
    path = Path(path)
    if not path.is_file():
        raise EdgesrError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = dict(handle.metadata() or {})
                state = {k: handle.get_tensor(k) for k in handle.keys()}
        except (SafetensorError, OSError, ValueError) as error:
            raise EdgesrError(f"{path}: not a readable safetensors file ({error})") from None
        check_finite(state, path)
        return state, metadata
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError,
            ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EdgesrError(f"{path}: not a readable PyTorch weight file ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EdgesrError(f"{path}: does not hold a state dict of tensors")
    check_finite(state, path)
    return state, {}


def check_finite(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinity: they give black or garbage images, and NaN
    PSNRs, with no other sign of trouble."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise EdgesrError(f"{path}: tensor {key} holds {bad} NaN or infinite values of {tensor.numel()}")


def load_weights_into(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a weight file into ``model`` strictly; mismatches name the file, key and shapes."""
    state, metadata = read_state_dict(path)
    spec = getattr(model, "spec", None)
    stored_id = metadata.get("model_id")
    if spec is not None and stored_id and stored_id != spec.id:
        raise EdgesrError(f"{path}: holds weights for {stored_id}, not {spec.id}")
    expected = model.state_dict()
    name = spec.id if spec is not None else type(model).__name__
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:4])}")
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:4])}")
        raise EdgesrError(f"{path}: weights do not fit {name} ({'; '.join(detail)})")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise EdgesrError(
                f"{path}: weights do not fit {name} ({key} has shape {tuple(state[key].shape)},"
                f" {name} needs {tuple(tensor.shape)})"
            )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return model


def save_weights(model: nn.Module, path: str | os.PathLike, record: dict | None = None) -> Path:
    """Save ``model`` as safetensors (atomically), with its id and ``record`` as metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {"format": "edgesr", "model_id": model.spec.id}
    if record:
        metadata["record"] = json.dumps(record, sort_keys=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def weight_file(model_id: str, folder: str | os.PathLike) -> Path | None:
    """``<id>.safetensors`` (preferred), ``<id>.model``, ``.pt`` or ``.pth`` in ``folder``, or None."""
    for suffix in WEIGHT_SUFFIXES:
        path = Path(folder) / f"{model_id}{suffix}"
        if path.is_file():
            return path
    return None


def weight_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Every weight file of ``folder`` keyed by its name without suffix (which the caller checks
    is a model id), the preferred suffix winning when one name has several."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgesrError(f"{folder}: not a folder of weight files")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in WEIGHT_SUFFIXES or not path.is_file():
            continue
        best = found.get(path.stem)
        if best is None or WEIGHT_SUFFIXES.index(path.suffix) < WEIGHT_SUFFIXES.index(best.suffix):
            found[path.stem] = path
    return found


def shipped_manifest() -> dict:
    """The shipped-weights manifest: ``{"models": {id: entry}, "defaults": {scale: id}}``.

    Each entry records the file, its sha256, the training recipe and data, and the PSNR/SSIM
    measured with ``edgesr eval`` (paper protocol), next to the official weights' on the same
    images where those were available.
    """
    path = SHIPPED_DIR / "manifest.json"
    if not path.is_file():
        return {"models": {}, "defaults": {}}
    return json.loads(path.read_text())


def shipped_weights_path(model_id: str) -> Path:
    """Path of the shipped weights for ``model_id``; a clear error lists what ships."""
    models = shipped_manifest()["models"]
    if model_id not in models:
        listed = ", ".join(sorted(models)) or "none"
        raise EdgesrError(f"no shipped weights for {model_id}; shipped: {listed} (or pass a weight file;"
                          " in Python, pretrained=False builds an untrained network)")
    return SHIPPED_DIR / models[model_id]["file"]


def default_model_id(scale: int) -> str:
    """The model `edgesr upscale` uses for a scale: the shipped default, else bicubic."""
    return shipped_manifest()["defaults"].get(str(scale), f"Bicubic_s{scale}")
