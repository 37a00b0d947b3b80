"""Export for the runtimes phones and boards use: ncnn (Android/embedded SR apps), Core ML (iOS,
macOS) and LiteRT/TFLite (Android), each with a parity check in its own Python runtime.

All three carry the luma graph of `edgesr.export`: input (1, 1, H, W) float32 in 0..1 (the model's
luma scale, (Y - 16) / 219 of studio-range Y), output (1, 1, sH, sW) float32, the raw model output
(unclipped, the model's own zero padding), with H and W free (LiteRT: fixed, see below). Colour
conversion and chroma are the app's job (the ONNX ``--color`` graph has them inside). Converters
are optional extras:

* ncnn: ``pip install 'edgesr[ncnn]'`` (pnnx converts a trace, ncnn runs it): ``NAME.param``
  (graph, blobs ``in0`` -> ``out0``) and ``NAME.bin`` (float32 weights) side by side.
* Core ML: ``pip install 'edgesr[coreml]'`` (coremltools): ``NAME.mlpackage``, an ML program
  computing in float32, input ``lr``, output ``hr``. Core ML runs only on Apple systems, so
  on Linux the file is validated by loading its spec, not by running it.
* LiteRT: ``pip install 'edgesr[tflite]'`` (litert-torch converts, ai-edge-litert runs):
  ``NAME.tflite`` for one input size (``size``, default 540 x 960 -> Full HD at x2): litert-torch
  could not convert eSR-TM with free H and W (its split of symbolic channels fails), and a phone
  app runs a fixed frame or tile size anyway.

>>> from edgesr import create_model
>>> param, weights = export_ncnn(create_model("eSR-MAX_s2_K3_C2"), "esr")   # doctest: +SKIP
>>> ncnn_parity(create_model("eSR-MAX_s2_K3_C2"), param, weights) < 1e-4   # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgesr.atomic import atomic_path
from edgesr.errors import EdgesrError
from edgesr.export_check import max_difference

FORMATS = ("ncnn", "coreml", "tflite")
TFLITE_SIZE = (540, 960)
#: The example sizes traced: two, so that converters see which dimensions vary.
_EXAMPLE, _OTHER = (1, 1, 24, 32), (1, 1, 40, 28)


def _require(package: str, extra: str):  # noqa: ANN202
    try:
        return __import__(package)
    except ImportError:
        raise EdgesrError(f"{package} is not installed; pip install 'edgesr[{extra}]'") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence a converter's own prints (C++ stdout/stderr and progress bars) while it runs."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            os.dup2(null.fileno(), 1), os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def _frozen(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).float().eval()


def ncnn_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``NAME`` (or NAME.param / NAME.bin) -> (NAME.param, NAME.bin)."""
    base = Path(path)
    if base.suffix in (".param", ".bin"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".param"), base.with_name(base.name + ".bin")


def export_ncnn(model: nn.Module, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``NAME.param`` and ``NAME.bin`` (float32 weights) for ncnn; returns both paths."""
    pnnx = _require("pnnx", "ncnn")
    param, weights = ncnn_paths(path)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        names = {key: str(tmp / f"model.{key}") for key in ("pnnxparam", "pnnxbin", "pnnxonnx", "ncnnparam",
                                                             "ncnnbin")}
        names.update(pnnxpy=str(tmp / "model_pnnx.py"), ncnnpy=str(tmp / "model_ncnn.py"))  # imported by pnnx
        try:
            with _quiet(), torch.no_grad():
                pnnx.export(_frozen(model), str(tmp / "model.pt"), (torch.rand(_EXAMPLE),),
                            (torch.rand(_OTHER),), fp16=False, **names)
        except Exception as error:  # noqa: BLE001 - the converter's failure, named
            raise EdgesrError(f"pnnx could not convert {model.spec.id}: {error}") from None
        if not Path(names["ncnnparam"]).exists():
            raise EdgesrError(f"pnnx wrote no ncnn files for {model.spec.id}")
        for source, target in ((names["ncnnparam"], param), (names["ncnnbin"], weights)):
            with atomic_path(target) as out:
                shutil.copyfile(source, out)
    return param, weights


def ncnn_parity(model: nn.Module, param: str | os.PathLike, weights: str | os.PathLike,
                sizes: tuple[tuple[int, int], ...] = ((37, 29), (16, 53)), seed: int = 0) -> float:
    """Largest |ncnn - torch| over random inputs in 0..1 of ``sizes`` (expect <= 1e-5)."""
    ncnn = _require("ncnn", "ncnn")
    net = ncnn.Net()
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise EdgesrError(f"ncnn could not load {param} / {weights}")
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for size in sizes:
        x = torch.rand(1, 1, *size, generator=generator)
        planes = np.ascontiguousarray(x[0].numpy())  # (1, H, W); must outlive the Mat over it
        extractor = net.create_extractor()
        extractor.input("in0", ncnn.Mat(planes))
        code, out = extractor.extract("out0")
        if code != 0:
            raise EdgesrError(f"{param}: ncnn failed to run ({code})")
        got = np.array(out)[None]
        with torch.inference_mode():
            want = _frozen(model)(x).numpy()
        if got.shape != want.shape:
            raise EdgesrError(f"{param}: output shape {got.shape}, reference {want.shape}")
        worst = max(worst, max_difference(got, want, param))
    return worst


def export_coreml(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``NAME.mlpackage``: a float32 ML program with free H and W (input ``lr``, output ``hr``)."""
    with _quiet():  # its import prints that the Apple-only runtime is missing
        ct = _require("coremltools", "coreml")
    path = Path(path)
    if path.suffix != ".mlpackage":
        path = path.with_name(path.name + ".mlpackage")
    module = _frozen(model)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(module, torch.rand(_EXAMPLE), check_inputs=[(torch.rand(_OTHER),)])
        shape = ct.Shape(shape=(1, 1, ct.RangeDim(1, 8192, default=_EXAMPLE[2]),
                                ct.RangeDim(1, 8192, default=_EXAMPLE[3])))
        try:
            program = ct.convert(traced, inputs=[ct.TensorType(name="lr", shape=shape)],
                                 outputs=[ct.TensorType(name="hr")], convert_to="mlprogram",
                                 compute_precision=ct.precision.FLOAT32,
                                 minimum_deployment_target=ct.target.iOS16)
        except Exception as error:  # noqa: BLE001 - the converter's failure, named
            raise EdgesrError(f"coremltools could not convert {model.spec.id}: {error}") from None
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        staged = Path(folder) / path.name
        program.save(str(staged))
        if path.exists():
            shutil.rmtree(path)
        os.replace(staged, path)
    return path


def coreml_check(model: nn.Module, path: str | os.PathLike) -> str:
    """Validate an ``.mlpackage`` by loading its spec (Core ML itself runs only on Apple systems):
    one input ``lr`` (1, 1, H, W) with H and W free up to 8192, one output ``hr``, and a program
    and weights that load. Returns a one-line summary; raises on a mismatch."""
    with _quiet():
        ct = _require("coremltools", "coreml")
    spec = ct.utils.load_spec(str(path))
    inputs, outputs = spec.description.input, spec.description.output
    if [i.name for i in inputs] != ["lr"] or [o.name for o in outputs] != ["hr"]:
        raise EdgesrError(f"{path}: expected input lr and output hr, got {[i.name for i in inputs]}"
                          f" -> {[o.name for o in outputs]}")
    array = inputs[0].type.multiArrayType
    ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    if list(array.shape)[:2] != [1, 1] or len(ranges) != 4 or ranges[2][1] < 4096 or ranges[3][1] < 4096:
        raise EdgesrError(f"{path}: input is not (1, 1, H, W) with free H and W: {list(array.shape)} {ranges}")
    with _quiet():
        ct.models.MLModel(str(path), skip_model_load=True)  # the package's weights and program load
    return (f"spec v{spec.specificationVersion} ML program, lr (1, 1, H<={ranges[2][1]}, W<={ranges[3][1]})"
            " -> hr; not run: Core ML needs macOS/iOS")


def export_tflite(model: nn.Module, path: str | os.PathLike, size: tuple[int, int] = TFLITE_SIZE) -> Path:
    """Write ``NAME.tflite`` (LiteRT, float32) for (1, 1, *size) inputs."""
    litert_torch = _require("litert_torch", "tflite")
    path = Path(path)
    if path.suffix != ".tflite":
        path = path.with_name(path.name + ".tflite")
    try:
        with _quiet(), torch.no_grad():
            converted = litert_torch.convert(_frozen(model), (torch.rand(1, 1, *size),))
            with atomic_path(path) as tmp:
                converted.export(str(tmp))
    except EdgesrError:
        raise
    except Exception as error:  # noqa: BLE001 - the converter's failure, named
        raise EdgesrError(f"litert-torch could not convert {model.spec.id}: {error}") from None
    return path


def tflite_parity(model: nn.Module, path: str | os.PathLike, seed: int = 0) -> float:
    """Largest |LiteRT - torch| on a random input of the file's size (expect <= 1e-5)."""
    _require("ai_edge_litert", "tflite")
    from ai_edge_litert.interpreter import Interpreter

    with _quiet():
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = torch.rand(*[int(v) for v in source["shape"]], generator=torch.Generator().manual_seed(seed))
    interpreter.set_tensor(source["index"], x.numpy())
    interpreter.invoke()
    got = interpreter.get_tensor(target["index"])
    with torch.inference_mode():
        want = _frozen(model)(x).numpy()
    if got.shape != want.shape:
        raise EdgesrError(f"{path}: output shape {got.shape}, reference {want.shape}")
    return max_difference(got, want, path)
