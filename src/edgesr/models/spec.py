"""Model ids: the official grammar of the edge-SR release, parsed and printed.

Every model in edgesr is named the way the paper's weight files are named, so results, weight
files and command lines all use one vocabulary::

    Bicubic_s2   eSR-MAX_s2_K3_C1   eSR-TM_s2_K7_C16   eSR-TR_s3_K5_C4
    eSR-CNN_s3_C4_D3_S9   ESPCN_s4_D16_S12   FSRCNN_s2_D56_S12_M4

>>> spec = ModelSpec.parse("eSR-TM_s2_K7_C16")
>>> spec.family, spec.scale, spec.params
('eSR-TM', 2, {'K': 7, 'C': 16})
>>> spec.id
'eSR-TM_s2_K7_C16'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgesr.errors import EdgesrError

#: Hyper-parameter letters of each family, in the order they appear in an id.
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "Bicubic": (),
    "eSR-MAX": ("K", "C"),
    "eSR-TM": ("K", "C"),
    "eSR-TR": ("K", "C"),
    "eSR-CNN": ("C", "D", "S"),
    "ESPCN": ("D", "S"),
    "FSRCNN": ("D", "S", "M"),
}

#: Filter responses per channel of the one-layer families: values, + keys (TM), + queries (TR).
ONE_LAYER_FACTORS = {"eSR-MAX": 1, "eSR-TM": 2, "eSR-TR": 3}
#: The one-layer families (one conv, a pixel shuffle and a per-pixel reduction).
ONE_LAYER_FAMILIES = tuple(ONE_LAYER_FACTORS)

GRAMMAR = (
    "Bicubic_s#, eSR-MAX_s#_K#_C#, eSR-TM_s#_K#_C#, eSR-TR_s#_K#_C#, "
    "eSR-CNN_s#_C#_D#_S#, ESPCN_s#_D#_S#, FSRCNN_s#_D#_S#_M# (# = integer, s = scale >= 2)"
)

_NUMBER = re.compile(r"^([A-Za-z])(\d+)$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model id: family, upscaling factor and the family's hyper-parameters.

    ``K`` filter size, ``C`` channels (templates), ``D``/``S``/``M`` layer widths and depth.
    """

    family: str
    scale: int
    params: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILY_FIELDS:
            raise EdgesrError(f"unknown model family {self.family!r}; ids look like: {GRAMMAR}")
        if set(self.params) != set(FAMILY_FIELDS[self.family]):
            raise EdgesrError(
                f"{self.family} needs parameters {', '.join(FAMILY_FIELDS[self.family]) or 'none'};"
                f" ids look like: {GRAMMAR}"
            )
        if self.scale < 2:
            raise EdgesrError(f"scale must be >= 2, got s{self.scale}")
        minimum = {"K": 1, "C": 1, "D": 0, "S": 1, "M": 0}
        for name, value in self.params.items():
            if value < minimum[name]:
                raise EdgesrError(f"{self.family}: {name} must be >= {minimum[name]}, got {value}")
        if "K" in self.params and self.params["K"] % 2 == 0:
            raise EdgesrError(f"{self.family}: K must be odd (centred filters), got {self.params['K']}")

    @classmethod
    def parse(cls, model_id: str) -> "ModelSpec":
        """Parse an id such as ``eSR-TM_s2_K7_C16``; a malformed id raises `EdgesrError`."""
        parts = str(model_id).strip().split("_")
        family = parts[0]
        fields = FAMILY_FIELDS.get(family)
        if fields is None or len(parts) != 2 + len(fields):
            raise EdgesrError(f"malformed model id {model_id!r}; ids look like: {GRAMMAR}")
        values: dict[str, int] = {}
        expected = ("s", *fields)
        for part, letter in zip(parts[1:], expected):
            match = _NUMBER.match(part)
            if match is None or match.group(1) != letter:
                raise EdgesrError(
                    f"malformed model id {model_id!r}: expected {letter}# in place of {part!r};"
                    f" ids look like: {GRAMMAR}"
                )
            values[letter] = int(match.group(2))
        scale = values.pop("s")
        return cls(family, scale, values)

    @property
    def id(self) -> str:
        """The canonical id string; ``ModelSpec.parse(x).id == x`` for every valid id."""
        fields = "".join(f"_{name}{self.params[name]}" for name in FAMILY_FIELDS[self.family])
        return f"{self.family}_s{self.scale}{fields}"

    def __getattr__(self, name: str) -> int:
        # spec.K, spec.C, ... read the hyper-parameters directly.
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(name)

    def __str__(self) -> str:
        return self.id

    def __hash__(self) -> int:
        return hash(self.id)


def canonical_family(name: str) -> str:
    """A family name in any case (``esr-tm``) -> its spelling in ids (``eSR-TM``).

    >>> canonical_family("esr-tm")
    'eSR-TM'
    """
    for family in FAMILY_FIELDS:
        if family.lower() == name.strip().lower():
            return family
    raise EdgesrError(f"unknown family {name!r}; choose from {', '.join(FAMILY_FIELDS)}")


def parse_model_name(name: str, scale: int) -> ModelSpec:
    """An id, or the name of a family without hyper-parameters (``Bicubic``) for its model at
    ``scale``: what `edgesr bench` accepts.

    >>> parse_model_name("Bicubic", 3).id
    'Bicubic_s3'
    """
    if name in FAMILY_FIELDS and not FAMILY_FIELDS[name]:
        return ModelSpec(name, scale, {})
    return ModelSpec.parse(name)


def paper_grid() -> list[str]:
    """The 1185 model ids of the paper's exhaustive search, in a stable order.

    eSR-MAX/TM/TR: s 2..4, K in {3,5,7}, C 1..16; eSR-CNN: C in {2,4,6,8}, D in {1,3,5,7,9},
    S in {3,6,9,12,15}; ESPCN: 100 (D, S) pairs per scale; FSRCNN: D in {6,19,32,44,56},
    S in {1,3,6,9,12}, M in {1,4}; and Bicubic_s2..s4.
    """
    scales = (2, 3, 4)
    ids = [f"Bicubic_s{s}" for s in scales]
    for family in ONE_LAYER_FAMILIES:
        ids += [f"{family}_s{s}_K{k}_C{c}" for s in scales for k in (3, 5, 7) for c in range(1, 17)]
    ids += [
        f"eSR-CNN_s{s}_C{c}_D{d}_S{w}"
        for s in scales
        for c in (2, 4, 6, 8)
        for d in (1, 3, 5, 7, 9)
        for w in (3, 6, 9, 12, 15)
    ]
    # ESPCN: narrow first layers pair with S in steps of 6 from 3, wide ones with even S.
    narrow = ((0, 1, 2, 3, 5, 6, 7, 9, 10, 11), (3, 9, 15, 21, 27))
    wide = ((4, 8, 12, 16, 22, 28, 34, 40, 52, 64), (6, 12, 18, 24, 32))
    for s in scales:
        pairs = [(d, w) for ds, ws in (narrow, wide) for d in ds for w in ws]
        ids += [f"ESPCN_s{s}_D{d}_S{w}" for d, w in sorted(pairs)]
    ids += [
        f"FSRCNN_s{s}_D{d}_S{w}_M{m}"
        for s in scales
        for d in (6, 19, 32, 44, 56)
        for w in (1, 3, 6, 9, 12)
        for m in (1, 4)
    ]
    return ids
