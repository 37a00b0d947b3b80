"""The native colour pipeline: an RGB(A)/gray uint8/uint16 image in, the upscaled image out.

One pass over strips of LR rows inside the C kernel (csrc/fused.c, ``edgesr_color``): BT.601 Y'
(the mapping the models were trained on, `edgesr.imaging.RGB_TO_YCBCR`) goes through the model,
Cb/Cr and alpha through the separable bicubic with replicated edges, and the strip is converted
back to RGB, rounded half to even, clamped and written straight into the output array. No
whole-image float intermediates: the pipeline around the kernel was 42 ms of the 67-77 ms that
``Upscaler("eSR-MAX_s2_K3_C2").upscale(rgb)`` took on a 960x540 photo before it existed.

Models the kernel does not run (ESPCN, FSRCNN, eSR-CNN, any model on CUDA or ONNX Runtime) use
the same pipeline around their own forward: the kernel reads their input planes from the image
(`native.read_planes`), the backend runs, and the kernel mixes its output with the bicubic
chroma (planes of kind 2, "precomputed").

Value ranges: input integers 0..peak (255 or 65535); the model sees (Y' - 16) / 219 with Y' the
studio-range luma of the 0..255-scaled pixels (gray: pixel / peak, i.e. R = G = B), and its
output is clipped to 0..1 before it maps back.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgesr.engine import native
from edgesr.imaging import LUMA_RANGE, RGB_TO_YCBCR, YCBCR_TO_RGB

MODEL, CHROMA, PRECOMPUTED = 0, 1, 2  # how a plane is filtered (the kernel's plane kinds)


@dataclass(frozen=True)
class ColorPlan:
    """A `native.Color` for one image layout, and how many planes the model runs on."""

    spec: native.Color
    model_planes: int


def plan_color(channels: int, peak: float, color: str = "ycbcr", order: str = "rgb",
               model_kind: int = MODEL) -> ColorPlan:
    """The kernel's colour spec for (H, W, ``channels``) images of full scale ``peak``.

    ``color``: "ycbcr" (luma through the model, bicubic chroma) or "rgb" (the model on each
    channel); ``order``: "rgb" or "bgr" (OpenCV's channel order, in and out); ``model_kind``:
    `MODEL` when the kernel runs the model, `PRECOMPUTED` when the backend does.
    """
    if channels not in (1, 3, 4):
        raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
    unit = 255.0 / peak  # input integers -> 0..255
    spec = native.Color()
    rgb_index = [2, 1, 0] if order == "bgr" else [0, 1, 2]
    planes: list[tuple[int, list[float]]] = []  # (kind, coefficients per input channel)
    mix: list[list[float]] = []  # output channel k = sum_p mix[k][p] * t[p]
    if channels == 1:
        planes.append((model_kind, [1.0 / peak]))
        mix.append([peak])
    elif color == "rgb":
        for k in range(3):  # each channel through the model in place: the order does not matter
            coef = [0.0] * channels
            coef[k] = 1.0 / peak
            planes.append((model_kind, coef))
        mix = [[peak if p == k else 0.0 for p in range(3)] for k in range(3)]
    else:
        for row, kind, scale in ((0, model_kind, 1 / LUMA_RANGE), (1, CHROMA, 1.0), (2, CHROMA, 1.0)):
            coef = [0.0] * channels
            for k in range(3):  # offsets (16, 128, 128) cancel: planes hold Y'-16, Cb-128, Cr-128
                coef[rgb_index[k]] = RGB_TO_YCBCR[row, k] * unit * scale
            planes.append((kind, coef))
        # back to 0..peak: RGB = YCBCR_TO_RGB @ (219 t, Cb - 128, Cr - 128) / unit
        mix = [[YCBCR_TO_RGB[k, 0] * LUMA_RANGE / unit, YCBCR_TO_RGB[k, 1] / unit, YCBCR_TO_RGB[k, 2] / unit]
               for k in range(3)]
        if order == "bgr":
            mix = mix[::-1]
    if channels == 4:
        planes.append((CHROMA, [0.0, 0.0, 0.0, 1.0]))
        mix = [row + [0.0] for row in mix] + [[0.0] * (len(planes) - 1) + [1.0]]
    spec.planes, spec.outs, spec.peak = len(planes), len(mix), float(peak)
    for p, (kind, coef) in enumerate(planes):
        spec.kind[p] = kind
        for k, value in enumerate(coef):
            spec.coef[p][k] = value
    for k, row in enumerate(mix):
        for p, value in enumerate(row):
            spec.mat[k][p] = value
    return ColorPlan(spec, sum(kind == model_kind for kind, _ in planes))
