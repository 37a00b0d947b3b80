"""FSRCNN's strided deconvolution rewritten as a convolution + pixel shuffle, for graph engines.

A ``ConvTranspose2d(D, 1, k, stride=s)`` whose output is exactly s times its input computes, for
each of the s² output phases, an ordinary convolution of the input: output pixel ``s*q + r``
takes input ``q + t`` through tap ``p + r - s*t``. Stacking the phases as s² output channels
of one ``Conv2d`` and a ``PixelShuffle(s)`` gives the same function (float rounding apart) in a
form OpenVINO runs far faster: FSRCNN_s2_D56_S12_M4 at Full-HD took 295 ms against 721 ms with
the deconvolution (s3: 145 against 457, s4_D44: 61 against 192; 2 threads, same run).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgesr.models.baselines import FSRCNN


def deconv_as_subpixel(deconv: nn.ConvTranspose2d) -> nn.Sequential | None:
    """``Conv2d(D, s², T) + PixelShuffle(s)`` equal to ``deconv``, or None when ``deconv`` is not
    a square, single-output, s-times-exact deconvolution (the only kind rewritten)."""
    (s, s_w), (k, k_w), (p, p_w) = deconv.stride, deconv.kernel_size, deconv.padding
    exact = k + deconv.output_padding[0] - 2 * p == s and deconv.output_padding[0] == deconv.output_padding[1]
    if (s, k, p) != (s_w, k_w, p_w) or deconv.out_channels != 1 or deconv.groups != 1 \
            or deconv.dilation != (1, 1) or not exact:
        return None
    # (phase r, input offset t) pairs along one axis, with the deconvolution tap they use.
    taps = [(r, t, p + r - s * t) for r in range(s) for t in range(-k, k + 1) if 0 <= p + r - s * t < k]
    reach = max(abs(t) for _, t, _ in taps)
    source = deconv.weight.detach()  # (D, 1, k, k)
    weight = source.new_zeros(s * s, source.shape[0], 2 * reach + 1, 2 * reach + 1)
    for ry, ty, iy in taps:
        for rx, tx, ix in taps:
            weight[ry * s + rx, :, ty + reach, tx + reach] = source[:, 0, iy, ix]
    conv = nn.Conv2d(source.shape[0], s * s, 2 * reach + 1, padding=reach, bias=deconv.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if deconv.bias is not None:
            conv.bias.copy_(deconv.bias.detach().repeat(s * s))
    return nn.Sequential(conv, nn.PixelShuffle(s)).to(source.device)


def with_subpixel_output(model: nn.Module) -> nn.Module:
    """A copy of an FSRCNN with its final deconvolution as `deconv_as_subpixel`; any other
    model is returned as it is."""
    if not isinstance(model, FSRCNN) or not isinstance(model.net[-1], nn.ConvTranspose2d):
        return model
    rewritten = deconv_as_subpixel(model.net[-1])
    if rewritten is None:
        return model
    model = copy.deepcopy(model)
    model.net[-1] = rewritten
    return model
