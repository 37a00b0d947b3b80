"""The ``openvino`` backend: the model's ONNX graph (`edgesr.export`) compiled by OpenVINO for the CPU.

Same contract as every backend: (N, 1, H, W) float32 CPU tensor in 0..1 -> (N, 1, sH, sW)
float32 CPU, the raw model output, equal to the torch forward within 1e-5 (float32). On this
project's 2-core CPU it runs the deep families (eSR-CNN, ESPCN, FSRCNN) 2.5-6x faster than the
torch forward, so ``backend="auto"`` picks it for them when the ``openvino`` extra is installed
(`auto_build`). Needs ``pip install 'edgesr[openvino]'``; importing this module does not import
openvino.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import os
import threading
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from edgesr.atomic import write_bytes_atomic
from edgesr.engine import native, subpixel
from edgesr.engine.subpixel import with_subpixel_output
from edgesr.engine.torch_backend import resolve_device, resolve_dtype
from edgesr.errors import EdgesrError
from edgesr.models import ModelSpec, family_of

#: Input shapes kept compiled for their exact size (a video's frames, an image's tiles).
STATIC_SHAPES = 4


def unavailable_reason() -> str | None:
    """Why the backend cannot run here (openvino not installed), or None."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "backend openvino needs openvino; pip install 'edgesr[openvino]'"
    return None


class OpenVinoBackend:
    """Runs ``model`` (exported to ONNX in memory) with OpenVINO on the CPU, in float32.

    ``threads`` defaults to ``torch.get_num_threads()`` when a shape is compiled, so
    ``torch.set_num_threads`` (and ``edgesr bench --threads``) governs every engine alike.
    """

    name = "openvino"

    def __init__(self, model: nn.Module, device: str | torch.device | None = "cpu",
                 dtype: str | torch.dtype = "float32", threads: int | None = None) -> None:
        reason = unavailable_reason()
        if reason:
            raise EdgesrError(reason)
        import openvino as ov

        if resolve_device(device if device not in (None, "auto") else "cpu").type != "cpu":
            raise EdgesrError(f"backend openvino runs on the CPU, not {device}")
        if resolve_dtype(dtype) != torch.float32:
            raise EdgesrError(f"backend openvino runs float32, not {dtype}")
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.threads = threads
        self.scale = int(model.spec.scale) if hasattr(model, "spec") else None
        self._core = ov.Core()
        self._graph = ov.convert_model(io.BytesIO(onnx_graph(model)))
        self._dynamic: tuple[int, object] | None = None  # (threads, infer request) for any shape
        self._static: OrderedDict[tuple, object] = OrderedDict()  # (shape, threads) -> request
        self._seen: set[tuple] = set()
        self._lock = threading.Lock()  # an infer request is not reentrant

    def _config(self, threads: int) -> dict[str, object]:
        return {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "LATENCY"}

    def _request(self, shape: tuple[int, ...]):  # noqa: ANN202
        """The infer request for this input shape: compiled for the exact shape once a shape
        recurs, the dynamic-shape model before (a one-off shape does not pay a compile).

        Measured here, Full-HD x2 luma, 2 threads, same run: ESPCN_s2_D16_S32 132 ms compiled
        for its shape, 208 ms dynamic; a compile costs about 80-150 ms.
        """
        threads = self.threads or torch.get_num_threads()
        key = (shape, threads)
        if key in self._static:
            self._static.move_to_end(key)
            return self._static[key]
        if key in self._seen:
            graph = self._graph.clone()
            graph.reshape(list(shape))
            request = self._core.compile_model(graph, "CPU", self._config(threads)).create_infer_request()
            self._static[key] = request
            if len(self._static) > STATIC_SHAPES:
                self._seen.discard(self._static.popitem(last=False)[0])
            return request
        self._seen.add(key)
        if self._dynamic is None or self._dynamic[0] != threads:
            compiled = self._core.compile_model(self._graph, "CPU", self._config(threads))
            self._dynamic = (threads, compiled.create_infer_request())
        return self._dynamic[1]

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        import openvino as ov

        x = np.ascontiguousarray(lr.detach().to("cpu", torch.float32).numpy())
        with self._lock:
            request = self._request(tuple(x.shape))
            request.infer({0: ov.Tensor(x, shared_memory=True)})
            # Copy out: the request's buffer is reused by its next call.
            return torch.from_numpy(np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True))


def onnx_graph(model: nn.Module) -> bytes:
    """The ONNX graph OpenVINO compiles, from the disk cache when this model was exported before.

    FSRCNN's deconvolution goes as conv + pixel shuffle (2.4-3.1x faster here, engine/subpixel.py).
    The export is most of the backend's set-up (0.87 of about 1.1 s for ESPCN_s2_D4_S6 here), paid
    by every `edgesr upscale` of a deep model; the key covers the weights, the module's class, torch
    and the export code, and `auto_build` still checks the compiled graph against the forward.
    """
    from edgesr import export

    digest = hashlib.sha256()
    for part in (type(model).__qualname__, repr(getattr(model, "spec", None)), torch.__version__,
                 inspect.getsource(export), inspect.getsource(subpixel)):
        digest.update(part.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    path = native.cache_dir() / "openvino" / f"{digest.hexdigest()[:32]}.onnx"
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = export.onnx_bytes(with_subpixel_output(model))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    except OSError:  # a read-only cache only costs the export next time
        pass
    return data


def supports(model: nn.Module) -> bool:
    """Whether ``model`` is of a deep family (eSR-CNN, ESPCN, FSRCNN: those the fused C kernel,
    which is faster still, does not run), whose graphs OpenVINO runs faster than the torch
    forward here."""
    spec = getattr(model, "spec", None)
    return isinstance(spec, ModelSpec) and family_of(spec).kernel_mode is None


def self_check(backend: OpenVinoBackend, model: nn.Module) -> bool:
    """Compare with the torch forward on a small random input (within 1e-5, relative)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 23, 29, generator=generator)
    with torch.inference_mode():
        reference = copy.deepcopy(model).float().cpu().eval()(x)
    got = backend(x)
    return got.shape == reference.shape and bool(
        torch.allclose(got, reference, rtol=1e-5, atol=1e-5 * max(1.0, float(reference.abs().max()))))


def auto_build(model: nn.Module, device: str | torch.device | None,
               dtype: str | torch.dtype) -> OpenVinoBackend | None:
    """The backend ``backend="auto"`` uses for the deep families in float32 on the CPU when
    openvino imports and the compiled graph passes `self_check` (returned built, as the check
    built it); None otherwise, and the caller picks another. ``EDGESR_OPENVINO=0`` turns it off."""
    if os.environ.get("EDGESR_OPENVINO") == "0" or not supports(model) or unavailable_reason():
        return None
    try:
        if resolve_device(device).type != "cpu" or resolve_dtype(dtype) != torch.float32:
            return None
        backend = OpenVinoBackend(model)
        return backend if self_check(backend, model) else None
    except Exception:  # noqa: BLE001 - a graph that fails to compile must not break the user's call
        return None
