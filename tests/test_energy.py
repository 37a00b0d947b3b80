"""Energy counters: RAPL on a fake powercap tree (wrap-around included), NVML through a stand-in
module, and the measuring loop on a counter whose readings the test sets."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from edgesr.energy import EnergyReading, RaplCounter, measure, nvml_counter, rapl_domains


def zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = 1_000_000) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(label + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return folder


def set_energy(folder: Path, energy_uj: int) -> None:
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


def test_rapl_uses_package_zones_only(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 10)
    zone(tmp_path, "intel-rapl:0:0", "core", 5)  # a part of package-0
    zone(tmp_path, "intel-rapl:1", "package-1", 20)
    zone(tmp_path, "intel-rapl:2", "psys", 30)  # covers the packages too
    domains, reason = rapl_domains(tmp_path)
    assert reason is None
    assert [d.name for d in domains] == ["package-0", "package-1"]


def test_rapl_sums_packages_and_survives_a_wrap(tmp_path):
    first = zone(tmp_path, "intel-rapl:0", "package-0", 999_000, max_uj=1_000_000)
    second = zone(tmp_path, "intel-rapl:1", "package-1", 100)
    counter = RaplCounter(rapl_domains(tmp_path)[0])
    set_energy(first, 500)  # wrapped: 1000 uJ to the top, then 500
    set_energy(second, 2_100)
    assert counter.joules() == pytest.approx((1_000 + 500 + 2_000) / 1e6)
    set_energy(first, 1_500)
    assert counter.joules() == pytest.approx((1_500 + 1_000 + 2_000) / 1e6)
    assert counter.name == "rapl:package-0+package-1"


def test_rapl_absent_or_unreadable_says_why(tmp_path):
    domains, reason = rapl_domains(tmp_path)
    assert domains == [] and "no RAPL counter" in reason
    folder = zone(tmp_path, "intel-rapl:0", "package-0", 1)
    (folder / "energy_uj").unlink()
    (folder / "energy_uj").mkdir()  # reading fails (chmod would not stop root)
    domains, reason = rapl_domains(tmp_path)
    assert domains == [] and "not readable" in reason


class Ticking:
    """A counter and a clock the test drives: each call of the loop adds 0.5 J and 0.125 s."""

    name = "fake"

    def __init__(self) -> None:
        self.j, self.t = 0.0, 0.0

    def joules(self) -> float:
        return self.j

    def clock(self) -> float:
        return self.t

    def call(self) -> None:
        self.j += 0.5
        self.t += 0.125


def test_measure_divides_the_counter_change_by_frames_and_seconds():
    fake = Ticking()
    reading = measure(fake.call, fake, min_seconds=1.0, clock=fake.clock)
    assert reading.frames == 8
    assert reading.joules_per_frame == pytest.approx(0.5)
    assert reading.watts == pytest.approx(4.0)


def test_reading_properties():
    assert EnergyReading(6.0, 2.0, 3, "x").joules_per_frame == 2.0
    assert EnergyReading(6.0, 2.0, 3, "x").watts == 3.0


def test_nvml_counter_reads_millijoules_of_the_gpu_with_torchs_uuid(monkeypatch):
    calls = []

    class NVMLError(Exception):
        pass

    fake = types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=lambda: None,
        nvmlDeviceGetHandleByUUID=lambda uuid: calls.append(uuid) or "handle",
        nvmlDeviceGetHandleByIndex=lambda i: pytest.fail("the uuid must be used"),
        nvmlDeviceGetName=lambda h: b"Fake GPU",
        nvmlDeviceGetTotalEnergyConsumption=lambda h: 123_456)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    counter, reason = nvml_counter("5a7c-0001")
    assert reason is None and calls == ["GPU-5a7c-0001"]
    assert counter.name == "nvml:Fake GPU" and counter.joules() == pytest.approx(123.456)


def test_nvml_without_a_driver_says_why(monkeypatch):
    class NVMLError(Exception):
        pass

    def init() -> None:
        raise NVMLError("Driver Not Loaded")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=init))
    counter, reason = nvml_counter(None)
    assert counter is None and "Driver Not Loaded" in reason


def test_bench_energy_column_says_why_it_is_empty_or_names_the_counter():
    from typer.testing import CliRunner

    from edgesr.cli import app
    from edgesr.energy import rapl_domains

    result = CliRunner().invoke(app, ["bench", "Bicubic_s2", "--size", "8x12", "-r", "1", "--threads", "1",
                                      "--energy", "--energy-seconds", "0.05"])
    assert result.exit_code == 0, result.output
    domains, reason = rapl_domains()
    expected = "energy: rapl:" if domains else f"energy columns empty: {reason}"
    assert expected in " ".join(result.output.split())
