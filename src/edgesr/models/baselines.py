"""The deep baselines of the paper's search: ESPCN and FSRCNN, in the official layout.

Both take (N, 1, H, W) float luma in 0..1 and return (N, 1, sH, sW).
"""

from __future__ import annotations

from torch import nn

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
