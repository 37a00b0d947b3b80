"""Run models over benchmark sets and report the paper's table: PSNR/SSIM per set, parameters.

The default protocol, ``"paper"``, is the one that reproduces the edge-SR paper's numbers from
the official weights (measured; see the project docs):

1. HR: the RGB image (a grayscale file is R = G = B), mod-cropped to a multiple of the scale s.
2. LR: antialiased bicubic downscaling of the float RGB HR by 1/s, not rounded
   (``resize="torch"``: ``interpolate(mode="bicubic", antialias=True)``, the measured default;
   ``resize="matlab"``: `edgesr.resize.imresize`, symmetric borders).
3. Luma: BT.601 studio-range Y (16..235), float, for HR and LR.
4. The model sees (Y - 16)/219; its output o maps back as Y = 16 + 219 clip(o, 0, 1), unrounded.
5. PSNR (peak 255) and SSIM (MATLAB reference) on Y with s pixels shaved at every border; a
   set's value is the mean over its images.

``"standard"`` is what most SR toolboxes report: the LR RGB is rounded to 8 bits (as LR files
are), the model sees Y/255 and its output is rounded to 8 bits (Y = round(255 clip(o, 0, 1))).

Models run as built by `load_model`, with the zero padding of the official code at borders
(not `Upscaler`'s edge replication), in float32 on the CPU.

>>> result = evaluate(["Bicubic_s2"], ["path/to/Set5"])              # doctest: +SKIP
>>> result.table["Bicubic_s2"]["psnr_Set5"]                           # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgesr.data import canonical_name, list_images, resolve_dataset
from edgesr.engine.backends import make_backend
from edgesr.errors import EdgesrError, per_file
from edgesr.imaging import (
    luma_to_model,
    mod_crop,
    read_pixels,
    model_to_luma,
    rgb_to_luma,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
    write_image,
)
from edgesr.metrics import LumaTarget, lpips_metric
from edgesr.models import ModelSpec, count_parameters, load_model
from edgesr.progress import Progress, Reporter
from edgesr.resize import downscale, imresize
from edgesr.weights import read_state_dict, weight_files


# --- protocols ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Protocol:
    """How LR images are made and how luma goes in and out of a model.

    Attributes:
        name: "paper" or "standard".
        round_lr: round the LR RGB to 8 bits (0..255 integers) before taking its luma.
        model_scale: "studio" feeds (Y - 16)/219 and maps back 16 + 219 clip(o, 0, 1);
            "full" feeds Y/255 and maps back 255 clip(o, 0, 1).
        round_output: round the output luma to integers (8-bit output images).
    """

    name: str
    round_lr: bool
    model_scale: str
    round_output: bool

    def to_model(self, lr_y: np.ndarray) -> np.ndarray:
        """LR studio-range Y (float64) -> the model's input plane (float32)."""
        x = luma_to_model(lr_y) if self.model_scale == "studio" else lr_y / 255.0
        return np.ascontiguousarray(x, dtype=np.float32)

    def from_model(self, output: torch.Tensor) -> np.ndarray:
        """(H, W) raw model output -> luma on the 0..255 scale (float64)."""
        # numpy float64: the same maths in torch double took ~4x longer (measured, 512x512).
        o = output.numpy().astype(np.float64)
        y = model_to_luma(o) if self.model_scale == "studio" else 255.0 * np.clip(o, 0.0, 1.0)
        return np.rint(y) if self.round_output else y


PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol("paper", round_lr=False, model_scale="studio", round_output=False),
    "standard": Protocol("standard", round_lr=True, model_scale="full", round_output=True),
}

#: LR degradation used unless asked otherwise: the measured protocol used torch's antialiased
#: bicubic; on the 15 reference ids it lands closer to the reference table than the MATLAB port.
DEFAULT_RESIZE = "torch"


def get_protocol(protocol: str | Protocol) -> Protocol:
    """Look a protocol up by name ("paper" or "standard")."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise EdgesrError(f"unknown protocol {protocol!r}; choose {' or '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


# --- benchmark images --------------------------------------------------------------------------

@dataclass
class EvalImage:
    """One benchmark image prepared for a scale and protocol.

    Attributes:
        name: file stem.
        hr_y: (sH, sW) float64 HR luma, studio range 16..235 (mod-cropped).
        lr_y: (H, W) float64 LR luma, studio range.
        lr_chroma: (H, W, 2) float32 LR Cb/Cr (for colour outputs), or None for gray files.
    """

    name: str
    path: Path
    hr_y: np.ndarray
    lr_y: np.ndarray
    lr_chroma: np.ndarray | None

    @property
    def pixels(self) -> int:
        return int(self.hr_y.size)


@dataclass
class EvalSet:
    """A benchmark set at one scale: its column name, folder, prepared images and the one-line
    reasons of the files it skipped (unreadable, too small)."""

    name: str
    folder: Path
    scale: int
    images: list[EvalImage]
    skipped: list[str] = field(default_factory=list)


#: Prepared sets kept in memory, least recently used first; bounded by `CACHE_PIXELS`. Each
#: entry holds the images and the skipped files' reasons (reported again on every use).
_PAIR_CACHE: OrderedDict[tuple, tuple[list[EvalImage], list[str]]] = OrderedDict()

#: HR pixels (all cached sets and scales together) kept prepared between calls: about 11 bytes
#: each (float64 HR luma + LR planes), so 32M is ~350 MB. Set5 + Set14 at x2, x3, x4 take 11M.
CACHE_PIXELS = 32_000_000


def resolve_dataset_folder(dataset: str | os.PathLike) -> tuple[str, Path]:
    """A dataset name or folder -> (column name, folder of HR images), via `edgesr.data`."""
    return canonical_name(dataset), Path(resolve_dataset(dataset))


def hr_images(folder: Path) -> list[Path]:
    """The benchmark images of a folder (`edgesr.data.list_images`); an empty folder is an error."""
    files = list_images(folder)
    if not files:
        raise EdgesrError(f"{folder}: holds no images")
    return files


def prepare_image(path: Path, scale: int, protocol: str | Protocol = "paper",
                  resize: str = DEFAULT_RESIZE) -> EvalImage:
    """Read an HR file and make its (HR luma, LR luma) pair for ``scale`` under ``protocol``."""
    protocol = get_protocol(protocol)
    pixels = read_pixels(path)
    hr = mod_crop(pixels, scale)
    if min(hr.shape[:2]) < scale * 4:
        raise EdgesrError(f"{path}: image of {pixels.shape[1]}x{pixels.shape[0]} is too small for x{scale}")
    lr = downscale(hr, scale, method=resize)
    if protocol.round_lr:
        lr = np.clip(np.rint(lr), 0.0, 255.0)
    gray = hr.ndim == 2
    if gray:
        lr_y, chroma = rgb_to_luma(lr), None
    else:
        ycbcr = rgb_to_ycbcr(lr)
        lr_y, chroma = ycbcr[..., 0], ycbcr[..., 1:].astype(np.float32)
    return EvalImage(path.stem, path, rgb_to_luma(hr), np.ascontiguousarray(lr_y), chroma)


def load_set(dataset: str | os.PathLike, scale: int, protocol: str | Protocol = "paper",
             resize: str = DEFAULT_RESIZE) -> EvalSet:
    """Prepare every image of a set for one scale (all in memory; see `iter_set` for streaming).

    Cached per (folder, its files' names, sizes and times, scale, protocol, resize) while the
    cache holds under `CACHE_PIXELS`, so repeated evaluations prepare a set once and edited
    files are never served stale.
    """
    name, folder = resolve_dataset_folder(dataset)
    skipped: list[str] = []
    images = list(_prepared(folder, scale, get_protocol(protocol), resize, skipped))
    return EvalSet(name, folder, scale, images, skipped)


def iter_set(dataset: str | os.PathLike, scale: int, protocol: str | Protocol = "paper",
             resize: str = DEFAULT_RESIZE, skipped: list[str] | None = None) -> tuple[str, Iterable[EvalImage]]:
    """(column name, prepared images) of a set, from the cache or prepared one at a time.

    Files that cannot be used (unreadable, too small) are left out; their one-line reasons are
    appended to ``skipped`` as the iteration reaches them.
    """
    name, folder = resolve_dataset_folder(dataset)
    return name, _prepared(folder, scale, get_protocol(protocol), resize, [] if skipped is None else skipped)


def _prepared(folder: Path, scale: int, protocol: Protocol, resize: str,
              skipped: list[str]) -> Iterable[EvalImage]:
    files = hr_images(folder)
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(folder.resolve()), stamp, scale, protocol.name, resize)
    if key in _PAIR_CACHE:
        _PAIR_CACHE.move_to_end(key)
        images, reasons = _PAIR_CACHE[key]
        skipped += reasons
        return iter(images)
    return _prepare_and_cache(key, files, scale, protocol, resize, skipped)


def _prepare_and_cache(key: tuple, files: list[Path], scale: int, protocol: Protocol,
                       resize: str, skipped: list[str]) -> Iterable[EvalImage]:
    images: list[EvalImage] | None = []
    reasons: list[str] = []
    pixels = 0
    for path in files:
        image = None
        with per_file(path, reasons):
            image = prepare_image(path, scale, protocol, resize)
        if image is None:
            skipped.append(reasons[-1])
            continue
        pixels += image.pixels
        if images is not None:
            images.append(image)
            if pixels > CACHE_PIXELS:
                images = None  # too large to keep: stream it
        yield image
    if images is not None:
        _PAIR_CACHE[key] = (images, reasons)
        while sum(i.pixels for v, _ in _PAIR_CACHE.values() for i in v) > CACHE_PIXELS:
            _PAIR_CACHE.popitem(last=False)


def clear_cache() -> None:
    """Forget the prepared benchmark images (e.g. after the files changed)."""
    _PAIR_CACHE.clear()


# --- models ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelEntry:
    """A model to evaluate: its id and the weight file to load (None: the shipped weights)."""

    id: str
    weights: Path | None = None


def find_weight_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The weight files of a folder (`edgesr.weights.weight_files`) whose names are model ids,
    keyed by id; when one id has several, the edgesr ``.safetensors`` file wins."""
    found: dict[str, Path] = {}
    for name, path in weight_files(folder).items():
        try:
            found[ModelSpec.parse(name).id] = path
        except EdgesrError:
            continue
    return found


def resolve_models(ids: Sequence[str], weights: str | os.PathLike | None = None,
                   scale: int | None = None) -> list[ModelEntry]:
    """Model ids and an optional weight file or folder -> the models to evaluate.

    * ``weights`` a folder: each id's ``<id>.model``/``.safetensors`` in it; with no ids, every
      id found there.
    * ``weights`` a file: the one model (its id from ``ids`` or from the file name).
    * no ``weights``: the ids, with their shipped weights.
    ``scale`` keeps only the models of that scale.
    """
    entries: list[ModelEntry] = []
    if weights is not None and Path(weights).is_dir():
        found = find_weight_files(weights)
        if not ids:
            if not found:
                raise EdgesrError(f"{weights}: no <id>.safetensors, <id>.model, .pt or .pth files")
            entries = [ModelEntry(i, p) for i, p in found.items()]
        else:
            for model_id in ids:
                model_id = ModelSpec.parse(model_id).id
                if model_id not in found:
                    raise EdgesrError(f"{weights}: no weight file for {model_id}"
                                      f" ({model_id}.model or {model_id}.safetensors)")
                entries.append(ModelEntry(model_id, found[model_id]))
    elif weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise EdgesrError(f"{path}: weight file or folder not found")
        if len(ids) > 1:
            raise EdgesrError(f"{path}: one weight file given for {len(ids)} models; pass a folder")
        model_id = ids[0] if ids else _id_from_file(path)
        entries = [ModelEntry(ModelSpec.parse(model_id).id, path)]
    else:
        if not ids:
            raise EdgesrError("no models given: name model ids or pass --weights FOLDER")
        entries = [ModelEntry(ModelSpec.parse(i).id) for i in ids]
    if scale is not None:
        entries = [e for e in entries if ModelSpec.parse(e.id).scale == scale]
        if not entries:
            raise EdgesrError(f"no models of scale {scale} to evaluate")
    return entries


def _id_from_file(path: Path) -> str:
    if path.suffix == ".safetensors":
        stored = read_state_dict(path)[1].get("model_id")
        if stored:
            return stored
    try:
        return ModelSpec.parse(path.stem).id
    except EdgesrError:
        raise EdgesrError(f"{path}: cannot tell the model id from the file name; name the model") from None


def build_model(entry: ModelEntry) -> nn.Module:
    """The module for an entry, weights loaded (no file: the shipped ones), float32 eval mode."""
    return load_model(entry.id, entry.weights).float().eval()


@torch.inference_mode()
def run_model(model: Callable[[torch.Tensor], torch.Tensor],
              inputs: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """Run a model (or backend) on (H, W) float32 planes; equal shapes go through as one batch.

    Returns the raw (sH, sW) outputs in input order.
    """
    outputs: list[torch.Tensor | None] = [None] * len(inputs)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, plane in enumerate(inputs):
        groups.setdefault(plane.shape, []).append(index)
    for indices in groups.values():
        batch = torch.from_numpy(np.stack([inputs[i] for i in indices]))[:, None]
        result = model(batch)[:, 0]
        for k, i in enumerate(indices):
            outputs[i] = result[k]
    return outputs  # type: ignore[return-value]


#: LR pixels run through a model at once: one-layer models hold F*s*s*C float32 maps of this
#: size (up to 768 channels), so larger batches would cost gigabytes for little speed.
BATCH_LR_PIXELS = 1 << 18


def _batches(images: Iterable[EvalImage]) -> Iterator[list[EvalImage]]:
    """Consecutive images of equal LR shape, up to `BATCH_LR_PIXELS` LR pixels a batch."""
    batch: list[EvalImage] = []
    for image in images:
        if batch and (image.lr_y.shape != batch[0].lr_y.shape
                      or (len(batch) + 1) * image.lr_y.size > BATCH_LR_PIXELS):
            yield batch
            batch = []
        batch.append(image)
    if batch:
        yield batch


# --- evaluation --------------------------------------------------------------------------------

@dataclass
class EvalResult:
    """The outcome of `evaluate`.

    Attributes:
        table: ``{id: {"psnr_<set>": dB, "ssim_<set>": value, ..., "parameters": n}}``.
        per_image: rows ``{"id", "dataset", "image", "psnr", "ssim"}`` when requested.
        notes: things the user should know (e.g. why LPIPS was skipped, how many images a set's
            scores are over when some were skipped).
        skipped: one line per image left out (unreadable or too small), naming file and cause.
        seconds: wall time of the evaluation.
    """

    table: dict[str, dict[str, float]] = field(default_factory=dict)
    per_image: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def evaluate(models: Iterable[str | ModelEntry], datasets: Sequence[str | os.PathLike],
             protocol: str | Protocol = "paper", resize: str = DEFAULT_RESIZE,
             per_image: bool = False, save_images: str | os.PathLike | None = None,
             lpips: bool = False, progress: Reporter | None = None,
             backend: str = "auto", precision: str = "fp32") -> EvalResult:
    """Evaluate models on benchmark sets with the given protocol.

    Image-major: each image is prepared and its HR statistics computed once, then every model
    of that scale runs on it, so evaluating many models costs little beyond the models' own work
    and memory stays at one image (plus the bounded cache of prepared sets).

    Args:
        models: ids, `ModelEntry` (id + weight file) or built modules (with ``.spec``).
        datasets: dataset names (catalog) or folders of HR images; the column name is the
            dataset name or the folder's name.
        protocol: "paper" (default) or "standard"; see the module docstring.
        resize: LR degradation, "torch" (default) or "matlab".
        per_image: also return one row per (model, set, image).
        save_images: folder to write each output to, as ``<id>/<set>/<image>.png`` (8-bit colour:
            model luma with bicubic-upscaled LR chroma; gray files stay gray).
        lpips: add ``lpips_<set>`` columns when LPIPS can run locally (otherwise a note says why).
        progress: `edgesr.progress` reporter: "advance" events counting (model, image)
            evaluations (`count_images` x models in all; skipped images count as done).
        backend: "auto" (default) uses the fused
            C kernel (`edgesr.engine`) for one-layer models when it compiles and passes its
            self-check, with the same zero-padded borders (outputs equal within ~1e-6; measured
            10-25x faster on Set5+Set14 for eSR-TM/TR/MAX), and torch for the others; "torch"
            runs the module's own forward (the reference; PSNRs over all 1185 official files
            equal within 1e-7 dB).
        precision: the fused kernel's conv precision for one-layer models ("bf16", "int8",
            "fp16"; see `edgesr.engine.fused.FusedBackend`), to measure what it costs.
    Returns:
        an `EvalResult` whose table rows follow the paper's column names, in the models' order.
    """
    start = time.perf_counter()
    protocol = get_protocol(protocol)
    models = list(models)
    modules = {m.spec.id: m for m in models if isinstance(m, nn.Module)}  # in-memory (training)
    entries = [m if isinstance(m, ModelEntry) else ModelEntry(m.spec.id if isinstance(m, nn.Module)
                                                              else ModelSpec.parse(m).id) for m in models]
    if len({e.id for e in entries}) != len(entries):
        raise EdgesrError("a model id is listed twice")
    result = EvalResult()
    lpips_fn = None
    if lpips:
        lpips_fn, reason = lpips_metric()
        if lpips_fn is None:
            result.notes.append(reason)
    names = [resolve_dataset_folder(d)[0] for d in datasets]
    if len(set(names)) != len(names):
        raise EdgesrError(f"two datasets share a column name: {', '.join(names)}")
    built = [(entry, modules[entry.id] if entry.id in modules else build_model(entry)) for entry in entries]
    by_scale: dict[int, list[tuple[ModelEntry, Callable[[torch.Tensor], torch.Tensor]]]] = {}
    for entry, model in built:
        by_scale.setdefault(model.spec.scale, []).append((entry, _runner(model, backend, precision)))
    # scores[(id, set)] -> per-image (image index, psnr, ssim, lpips or None)
    scores: dict[tuple[str, str], list[tuple[int, str, float, float, float | None]]] = {}
    for dataset, name in zip(datasets, names):
        for scale, group in by_scale.items():
            skipped: list[str] = []
            _, images = iter_set(dataset, scale, protocol, resize, skipped)
            index = 0
            for batch in _batches(images):
                targets = [LumaTarget(image.hr_y, shave=scale) for image in batch]
                inputs = [protocol.to_model(image.lr_y) for image in batch]
                for entry, model in group:
                    outputs = run_model(model, inputs)
                    for k, (image, target, output) in enumerate(zip(batch, targets, outputs)):
                        sr_y = protocol.from_model(output)
                        if sr_y.shape != image.hr_y.shape:
                            raise EdgesrError(f"{entry.id}: output {sr_y.shape} does not match HR"
                                              f" {image.hr_y.shape} for {image.path}")
                        value = target.score(sr_y)
                        lp = None
                        if save_images is not None or lpips_fn is not None:
                            sr_rgb = colour_output(sr_y, image, scale)
                            if save_images is not None:
                                folder = Path(save_images) / entry.id / name
                                _save_output(folder / f"{image.name}.png", sr_rgb)
                            if lpips_fn is not None:
                                lp = _lpips_on(lpips_fn, sr_rgb, image, scale)
                        scores.setdefault((entry.id, name), []).append((index + k, image.name, *value, lp))
                        if progress is not None:
                            progress(Progress("eval", "advance", entry.id, units=1))
                index += len(batch)
            _report_skipped(result, name, scale, index, skipped, progress, len(group))
    for entry, model in built:
        row: dict[str, float] = {}
        for name in names:
            values = sorted(scores[(entry.id, name)])
            row[f"psnr_{name}"] = float(np.mean([v[2] for v in values]))
            row[f"ssim_{name}"] = float(np.mean([v[3] for v in values]))
            if lpips_fn is not None:
                row[f"lpips_{name}"] = float(np.mean([v[4] for v in values]))
            if per_image:
                result.per_image += [{"id": entry.id, "dataset": name, "image": v[1], "psnr": v[2],
                                      "ssim": v[3], **({"lpips": v[4]} if lpips_fn else {})} for v in values]
        row["parameters"] = count_parameters(model)
        result.table[entry.id] = row
    result.seconds = time.perf_counter() - start
    return result


def _report_skipped(result: EvalResult, name: str, scale: int, used: int, skipped: list[str],
                    progress: Reporter | None, models: int) -> None:
    """Record a set's skipped images once (not per scale) and say what its scores are over."""
    new = [reason for reason in skipped if reason not in result.skipped]
    result.skipped += new
    if progress is not None and skipped:
        progress(Progress("eval", "advance", name, units=len(skipped) * models))  # the bar counted these pairs
    if skipped:
        result.notes.append(f"{name} x{scale}: scores over {used} of {used + len(skipped)} images"
                            f" ({len(skipped)} skipped)")
    if used == 0:
        raise EdgesrError(f"{name}: no usable image for x{scale} ({skipped[0] if skipped else 'empty'})")


def _runner(model: nn.Module, backend: str, precision: str = "fp32") -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable that runs ``model``: itself for "torch", else an `edgesr.engine` backend."""
    if backend == "torch" and precision == "fp32":
        device = next(iter([*model.parameters(), *model.buffers()]), torch.empty(0)).device
        if device.type == "cpu":
            return model
        return lambda batch: model(batch.to(device)).float().cpu()  # a model training on a GPU
    if backend not in ("auto", "fused"):
        raise EdgesrError(f"unknown backend {backend!r} for evaluation; choose torch, auto or fused")
    return make_backend(backend, model, device="cpu", dtype="float32", precision=precision)


def count_images(datasets: Sequence[str | os.PathLike]) -> int:
    """Number of images in the sets (for progress bars)."""
    return sum(len(hr_images(resolve_dataset_folder(d)[1])) for d in datasets)


def colour_output(sr_y: np.ndarray, image: EvalImage, scale: int) -> np.ndarray:
    """An SR luma plane as an image in 0..255 float: (sH, sW) for gray files, else (sH, sW, 3)
    with the LR chroma upscaled by MATLAB bicubic."""
    if image.lr_chroma is None:
        return (sr_y - 16.0) * (255.0 / 219.0)
    chroma = imresize(image.lr_chroma.astype(np.float64), float(scale))
    return ycbcr_to_rgb(np.concatenate([sr_y[..., None], chroma], axis=-1))


def _save_output(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _lpips_on(fn: Callable[[np.ndarray, np.ndarray], float], sr: np.ndarray, image: EvalImage,
              scale: int) -> float:
    hr = mod_crop(read_pixels(image.path), scale)
    if hr.ndim == 2:
        hr, sr = np.repeat(hr[..., None], 3, -1), np.repeat(sr[..., None], 3, -1)
    return fn(np.clip(sr, 0, 255), hr)
