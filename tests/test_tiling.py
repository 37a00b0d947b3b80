"""Seam-free tiling: tiled output is bit-identical to one whole run, in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from edgesr.engine import Upscaler
from edgesr.engine.tiling import ALIGN, MIN_WINDOW_PIXELS, choose_tile, plan_tiles, tiled_apply
from edgesr.models import context_pixels, create_model

#: One id per family; FSRCNN with M=4 has the widest support (8 LR pixels).
FAMILY_IDS = ["Bicubic_s3", "eSR-MAX_s2_K7_C4", "eSR-TM_s3_K5_C3", "eSR-TR_s4_K3_C2",
              "eSR-CNN_s2_C4_D3_S6", "ESPCN_s3_D4_S6", "FSRCNN_s4_D6_S3_M4"]


def whole_single_threaded(fn, *args):  # noqa: ANN001, ANN201
    """The reference: one whole-image run with one intra-op thread (see tiling module notes)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("height,width,margin,tile", [(333, 419, 3, 192), (1001, 97, 8, 200),
                                                      (64, 5000, 0, 192), (700, 700, 40, 256), (17, 23, 2, 192)])
@pytest.mark.parametrize("strips", [False, True])
def test_tile_cores_partition_the_image_and_windows_are_aligned(height, width, margin, tile, strips):
    tiles = plan_tiles(height, width, margin, tile, strips)
    covered = np.zeros((height, width), np.int32)
    for t in tiles:
        covered[t.rows.core_start:t.rows.core_stop, t.cols.core_start:t.cols.core_stop] += 1
        for span, length in ((t.rows, height), (t.cols, width)):
            assert span.start % ALIGN == 0
            # at least `margin` real pixels beyond each inner core edge
            assert span.core_start == 0 or span.core_start - span.start >= margin
            assert span.core_stop == length or span.stop - span.core_stop >= margin
        area = (t.rows.stop - t.rows.start) * (t.cols.stop - t.cols.start)
        assert len(tiles) == 1 or area > MIN_WINDOW_PIXELS
    assert (covered == 1).all()
    assert not strips or all(t.cols.start == 0 and t.cols.stop == width for t in tiles)


@pytest.mark.parametrize("border", ["replicate", "zero"])
@pytest.mark.parametrize("model_id", FAMILY_IDS)
def test_tiled_planes_equal_untiled_bit_for_bit(model_id, border):
    torch.manual_seed(0)
    model = create_model(model_id)
    planes = torch.rand(1, 1, 333, 709)  # odd sizes; 2 x 4 windows at tile 192 (FSRCNN: 2 strips)
    whole = whole_single_threaded(Upscaler(model, border=border, tile=0).run_model, planes)
    tiled = Upscaler(model, border=border, tile=192).run_model(planes)
    assert torch.equal(tiled, whole)


@pytest.mark.parametrize("model_id,color,dtype,shape", [
    ("eSR-TR_s2_K5_C4", "ycbcr", np.uint8, (341, 401, 3)),
    ("ESPCN_s3_D4_S6", "ycbcr", np.uint16, (333, 351, 4)),
    ("FSRCNN_s2_D6_S3_M1", "rgb", np.uint8, (401, 333, 3)),
    ("eSR-CNN_s3_C2_D1_S3", "ycbcr", np.uint8, (325, 391)),
])
def test_tiled_image_equals_untiled_bit_for_bit(model_id, color, dtype, shape):
    image = np.random.default_rng(1).integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
    model = create_model(model_id)
    whole = whole_single_threaded(Upscaler(model, color=color, tile=0).upscale, image)
    tiled = Upscaler(model, color=color, tile=192).upscale(image)
    assert tiled.dtype == image.dtype and np.array_equal(tiled, whole)


def test_tile_size_does_not_change_the_output():
    image = np.random.default_rng(2).integers(0, 256, size=(521, 457, 3), dtype=np.uint8)
    model = create_model("eSR-TM_s2_K7_C4")
    first = Upscaler(model, tile=192).upscale(image)
    second = Upscaler(model, tile=320).upscale(image)
    assert np.array_equal(first, second)


def test_one_pixel_less_context_makes_seams():
    # The exactness above rests on context_pixels: a margin one short must change the output.
    torch.manual_seed(0)
    model = create_model("eSR-MAX_s2_K7_C4")
    planes = torch.rand(1, 1, 333, 901)  # 4 windows across: the middle ones have tight margins
    margin = context_pixels(model.spec)

    def run(p: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(p)

    exact = tiled_apply(run, planes, 2, margin, 192, (-2, -1))
    assert torch.equal(exact, whole_single_threaded(run, planes))
    short = tiled_apply(run, planes, 2, margin - 1, 192, (-2, -1))
    assert not torch.equal(short, exact)


def test_memory_budget_turns_tiling_on_and_keeps_the_result():
    image = np.random.default_rng(3).integers(0, 256, size=(400, 360), dtype=np.uint8)
    model = create_model("eSR-TR_s2_K3_C8")
    assert choose_tile(model.spec, 400, 360, budget=2**30, image=True) is None
    assert choose_tile(model.spec, 400, 360, budget=2**22, image=True) is not None
    whole = whole_single_threaded(Upscaler(model, tile=0).upscale, image)
    budgeted = Upscaler(model, memory_budget=2**22).upscale(image)
    assert np.array_equal(budgeted, whole)


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import numpy as np, torch
    from edgesr.engine import Upscaler
    from edgesr.models import create_model
    budget = int(sys.argv[1])
    upscaler = Upscaler(create_model("eSR-MAX_s2_K3_C4"), memory_budget=budget)
    upscaler.upscale(np.zeros((300, 300), np.uint8))  # warm up: libraries, thread pools
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    image = np.random.default_rng(0).integers(0, 256, size=(4096, 4096), dtype=np.uint8)
    out = upscaler.upscale(image)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": peak - before, "shape": list(out.shape)}))
""")


def test_large_tiled_run_stays_under_stated_memory_bound():
    # 4096 x 4096 gray at x2 with eSR-MAX C4: whole, the model alone would hold 66 floats per LR
    # pixel = 4.4 GB. Tiled, the bound is input (16 MiB) + output (64 MiB) + the budget
    # (64 MiB, shared by the worker windows) + 128 MiB allocator slack = 272 MiB.
    budget = 64 * 2**20
    bound = 16 * 2**20 + 64 * 2**20 + budget + 128 * 2**20
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(budget)], capture_output=True,
                            text=True, timeout=300, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["shape"] == [8192, 8192]
    assert measured["growth"] < bound, f"peak RSS grew {measured['growth'] / 2**20:.0f} MiB"
