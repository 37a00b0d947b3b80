"""One progress convention: library jobs report typed `Progress` events and print nothing."""

from __future__ import annotations

import numpy as np
import pytest

from edgesr.evaluate import count_images, evaluate
from edgesr.imaging import write_image
from edgesr.progress import Progress
from edgesr.upscale_files import upscale_files


def images(folder, count=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        write_image(folder / f"{k}.png", rng.integers(0, 256, (48 + k, 40, 3), dtype=np.uint8))
    return folder


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown progress kind"):
        Progress("eval", "tick")


def test_batch_upscaling_reports_each_file_and_prints_nothing(tmp_path, capsys):
    events = []
    report = upscale_files([str(images(tmp_path / "in")), str(tmp_path / "gone.png")], tmp_path / "out",
                           model="Bicubic_s2", progress=events.append)
    assert [e.kind for e in events] == ["start", "finished", "finished", "finished"]
    assert events[0].total == 3 and all(e.task == "upscale" and e.units == 1 for e in events[1:])
    first = events[1].values
    assert first["target"] == tmp_path / "out" / "0.png" and first["out_size"] == (80, 96)
    assert len(report.written) == 3 and report.errors  # the missing input is reported, not printed
    assert capsys.readouterr() == ("", "")


def test_evaluation_advances_once_per_model_and_image(tmp_path):
    folder = images(tmp_path / "set")
    events = []
    evaluate(["Bicubic_s2", "Bicubic_s3"], [str(folder)], progress=events.append)
    assert {(e.task, e.kind) for e in events} == {("eval", "advance")}
    assert sum(e.units for e in events) == 2 * count_images([str(folder)])
