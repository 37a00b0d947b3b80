"""Inference backends behind one interface, and the `Upscaler` facade that runs them."""

from edgesr.engine.backends import BACKENDS, make_backend
from edgesr.engine.torch_backend import TorchBackend, resolve_device, resolve_dtype
from edgesr.engine.upscaler import Upscaler

__all__ = ["BACKENDS", "TorchBackend", "make_backend", "Upscaler", "resolve_device", "resolve_dtype"]
