"""Energy per frame from the hardware's own counters: NVML on NVIDIA GPUs, RAPL on CPUs.

The paper's claim is "lowest power"; a stopwatch cannot check it. Both counters report the
energy the chip used since some origin, so the energy of a loop is the difference of two reads:

* NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the
  driver loaded, Volta and newer) through ``nvidia-ml-py`` (the ``gpu`` extra): the whole board.
* RAPL package domains under ``/sys/class/powercap/intel-rapl:N`` (Intel, and AMD Zen through
  the same driver): ``energy_uj`` microjoules, wrapping at ``max_energy_range_uj``. The files are
  root-only on Linux >= 5.10 and absent in most VMs; the reason is reported, not guessed around.

Both include whatever else the chip did meanwhile (other processes, idle power): the figures are
the device's energy over the loop divided by the frames, which is what a battery or a power bill
sees. Counters update every few milliseconds, so loops run for at least a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

POWERCAP = Path("/sys/class/powercap")


class EnergyCounter(Protocol):
    """A cumulative energy reading in joules; `joules` may be called often (RAPL: to catch wraps)."""

    name: str

    def joules(self) -> float: ...


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL package domain: its folder, name ("package-0") and counter range in microjoules."""

    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def rapl_domains(root: str | Path = POWERCAP) -> tuple[list[RaplDomain], str | None]:
    """The readable RAPL package domains under ``root``, or ([], why none can be used).

    Only top-level ``intel-rapl:N`` zones named ``package-*`` count: their subzones (core,
    uncore, dram) are parts of them and ``psys`` covers the package too, so adding them would
    count energy twice.
    """
    root = Path(root)
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not zones:
        return [], f"no RAPL counter ({root}/intel-rapl:* absent: not exposed on this machine or VM)"
    domains = []
    for zone in zones:
        try:
            name = (zone / "name").read_text().strip()
            if not name.startswith("package"):
                continue
            domain = RaplDomain(zone, name, int((zone / "max_energy_range_uj").read_text().strip()))
            domain.read_uj()
        except (OSError, ValueError) as error:
            why = error.__class__.__name__
            return [], f"RAPL counter {zone / 'energy_uj'} not readable ({why}; root only)"
        domains.append(domain)
    if not domains:
        return [], f"no RAPL package domain under {root}"
    return domains, None


class RaplCounter:
    """Sum of the RAPL package domains, in joules since the counter was made; each read adds the
    change since the previous one, adding the range back when a counter wrapped."""

    def __init__(self, domains: list[RaplDomain]) -> None:
        self.domains = domains
        self.name = "rapl:" + "+".join(d.name for d in domains)
        self._last = [d.read_uj() for d in domains]
        self._total_uj = 0

    def joules(self) -> float:
        for i, domain in enumerate(self.domains):
            now = domain.read_uj()
            delta = now - self._last[i]
            if delta < 0:  # wrapped past max_energy_range_uj back to 0
                delta += domain.max_range_uj
            self._total_uj += delta
            self._last[i] = now
        return self._total_uj / 1e6


class NvmlCounter:
    """NVML's total-energy counter of one GPU (millijoules since the driver loaded), in joules."""

    def __init__(self, nvml, handle, name: str) -> None:  # noqa: ANN001 - pynvml module and handle
        self._nvml, self._handle = nvml, handle
        self.name = f"nvml:{name}"

    def joules(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3


def nvml_counter(uuid: str | None = None, index: int = 0) -> tuple[NvmlCounter | None, str | None]:
    """The NVML counter of the GPU with ``uuid`` (as torch reports it; NVML numbers GPUs
    without CUDA_VISIBLE_DEVICES, so the index is only the fallback), or (None, why not)."""
    try:
        import pynvml
    except ImportError:
        return None, "no NVML (pip install 'edgesr[gpu]' for nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        if uuid:
            text = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
            handle = pynvml.nvmlDeviceGetHandleByUUID(text)
        else:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as error:
        return None, f"NVML energy counter unavailable ({error})"
    return NvmlCounter(pynvml, handle, name.decode() if isinstance(name, bytes) else str(name)), None


def open_counter(device: str) -> tuple[EnergyCounter | None, str | None]:
    """The energy counter for a torch device string ("cpu", "cuda", "cuda:1"), or (None, why)."""
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        return nvml_counter(str(uuid) if uuid is not None else None, index)
    domains, reason = rapl_domains()
    return (RaplCounter(domains), None) if domains else (None, reason)


@dataclass(frozen=True)
class EnergyReading:
    """Energy of ``frames`` calls over ``seconds``, read from ``counter``."""

    joules: float
    seconds: float
    frames: int
    counter: str

    @property
    def joules_per_frame(self) -> float:
        return self.joules / self.frames

    @property
    def watts(self) -> float:
        return self.joules / self.seconds


def measure(call: Callable[[], object], counter: EnergyCounter, min_seconds: float = 2.0,
            sync: Callable[[], None] | None = None, clock: Callable[[], float] = time.perf_counter,
            poll_s: float = 0.1) -> EnergyReading:
    """Run ``call`` back to back for at least ``min_seconds`` (and 3 calls), reading ``counter``
    before and after (and every ``poll_s``, so a wrapping counter is never missed)."""
    sync = sync or (lambda: None)
    sync()
    start_j, start = counter.joules(), clock()
    frames, last_poll = 0, start
    while frames < 3 or clock() - start < min_seconds:
        call()
        frames += 1
        if clock() - last_poll >= poll_s:
            sync()
            counter.joules()
            last_poll = clock()
    sync()
    joules, seconds = counter.joules() - start_j, clock() - start
    return EnergyReading(joules, seconds, frames, counter.name)
