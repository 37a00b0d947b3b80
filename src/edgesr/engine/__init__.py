"""Inference backends behind one interface, and the `Upscaler` facade that runs them."""

from edgesr.engine.torch_backend import TorchBackend, resolve_device, resolve_dtype
from edgesr.engine.upscaler import Upscaler

__all__ = ["TorchBackend", "Upscaler", "resolve_device", "resolve_dtype"]
