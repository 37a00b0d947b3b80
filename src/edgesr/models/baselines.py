"""The deep baselines of the paper's search: ESPCN and FSRCNN, in the official layout.

Both take (N, 1, H, W) float luma in 0..1 and return (N, 1, sH, sW).
"""

from __future__ import annotations

from torch import nn

from edgesr.models.family import Family
from edgesr.models.spec import ModelSpec


def _xavier(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_normal_(layer.weight, gain=1.0)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ESPCN(nn.Module):
    """ESPCN: [conv 5x5 (D) + tanh], conv 3x3 (S) + tanh, conv 3x3 -> s*s, PixelShuffle, sigmoid.

    With D = 0 the first layer is absent and the S layer reads the image directly.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        s, d, w = spec.scale, spec.D, spec.S
        head = [nn.Conv2d(1, d, 5, padding=2), nn.Tanh()] if d > 0 else []
        self.net = nn.Sequential(
            *head,
            nn.Conv2d(d if d > 0 else 1, w, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(w, s * s, 3, padding=1),
            nn.PixelShuffle(s),
            nn.Sigmoid(),
        )
        _xavier(self)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net(x)


class FSRCNN(nn.Module):
    """FSRCNN: feature 5x5 (D), shrink 1x1 (S), M maps 3x3, expand 1x1 (D), deconv 9x9 stride s.

    PReLU after every conv but the last; the deconvolution's padding gives exactly sH x sW.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        s, d, w, m = spec.scale, spec.D, spec.S, spec.M
        mapping: list[nn.Module] = []
        for _ in range(m):
            mapping += [nn.Conv2d(w, w, 3, padding=1), nn.PReLU()]
        self.net = nn.Sequential(
            nn.Conv2d(1, d, 5, padding=2),
            nn.PReLU(),
            nn.Conv2d(d, w, 1),
            nn.PReLU(),
            *mapping,
            nn.Conv2d(w, d, 1),
            nn.PReLU(),
            nn.ConvTranspose2d(d, 1, 9, stride=s, padding=(9 - 1 - s) // 2 + 1,
                               output_padding=(s + 1) % 2),
        )
        _xavier(self)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net(x)


# --- family facts ------------------------------------------------------------------------------

ESPCN_FAMILY = Family(
    "ESPCN", ESPCN,
    context=lambda spec: (2 if spec.D > 0 else 0) + 1 + 1,  # [5x5], 3x3, 3x3
    macs_per_pixel=lambda spec: ((25 * spec.D if spec.D > 0 else 0) + 9 * max(spec.D, 1) * spec.S
                                 + 9 * spec.S * spec.scale**2),
    floats_per_pixel=lambda spec: 2 + 2 * max(spec.D, spec.S) + 4 * spec.scale**2,
    recipe="espcn", style=("D", "#ff7f0e"), bicubic_start=True,
)
FSRCNN_FAMILY = Family(
    "FSRCNN", FSRCNN,
    # 5x5 (2), 1x1, M x 3x3 (M), 1x1, then the 9x9 stride-s deconvolution (2 for s >= 2).
    context=lambda spec: 2 + spec.M + 2,
    # 5x5 (D), 1x1 shrink, M x 3x3 (S), 1x1 expand, the 9x9 deconvolution scattered.
    macs_per_pixel=lambda spec: (25 * spec.D + spec.D * spec.S + spec.M * 9 * spec.S**2 + spec.S * spec.D
                                 + 81 * spec.D),
    floats_per_pixel=lambda spec: 2 + 4 * max(spec.D, spec.S) + 4 * spec.scale**2,
    recipe="deep", style=("P", "#8c564b"),
    # Its stride-s transposed convolution in oneDNN rounds depending on the input width.
    full_width_tiles=True,
)
