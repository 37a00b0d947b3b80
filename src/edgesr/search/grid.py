"""Which model ids a search covers: the paper's grid, filters, or an ids file.

Rules (so that a command line reads predictably):

* ``grid="paper"`` starts from the paper's 1185 ids; filters then narrow it.
* Without a grid, filters build the selection per family: a family whose every field (K, C, ...)
  is given is the product of the given values (any values, also beyond the paper's); otherwise
  the paper's ids of that family, narrowed by the fields that are given. Families lacking a
  given field are left out (``K=[3]`` selects eSR-MAX/TM/TR only). Scales default to 2, 3, 4.
* Ids files hold one id per line; blank lines and ``#`` comments are skipped.

>>> select_ids(families=["eSR-TM"], scales=[2], fields={"K": [3], "C": [1, 2]})
['eSR-TM_s2_K3_C1', 'eSR-TM_s2_K3_C2']
>>> parse_values("1-4,8")
[1, 2, 3, 4, 8]
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from edgesr.errors import EdgesrError
from edgesr.models.spec import FAMILY_FIELDS, ModelSpec, canonical_family, paper_grid

PAPER_SCALES = (2, 3, 4)


def parse_values(text: str) -> list[int]:
    """``"3,5"`` -> [3, 5]; ``"1-16"`` -> 1..16; mixed ``"1-4,8"``. Order kept, repeats dropped."""
    values: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            if "-" in part.lstrip("-"):
                low, high = (int(v) for v in part.split("-", 1))
                if high < low:
                    raise ValueError
                chunk = list(range(low, high + 1))
            else:
                chunk = [int(part)]
        except ValueError:
            raise EdgesrError(f"{text!r}: expected integers or ranges such as 3,5 or 1-16") from None
        values += [v for v in chunk if v not in values]
    if not values:
        raise EdgesrError(f"{text!r}: names no value")
    return values


def read_ids_file(path: str | os.PathLike) -> list[str]:
    """Model ids listed one per line (``#`` comments, blank lines skipped), each checked."""
    path = Path(path)
    if not path.is_file():
        raise EdgesrError(f"{path}: no such ids file")
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            ids.append(ModelSpec.parse(text).id)
        except EdgesrError as error:
            raise EdgesrError(f"{path}:{number}: {error}") from None
    return ids


def select_ids(grid: str | None = None, families: Sequence[str] | None = None,
               scales: Sequence[int] | None = None, fields: dict[str, Sequence[int]] | None = None,
               ids: Iterable[str] = (), ids_file: str | os.PathLike | None = None) -> list[str]:
    """The ids a search covers, in a stable order without repeats (see the module rules).

    Args:
        grid: ``"paper"`` or None.
        families: family names (any case); None: every family.
        scales: upscaling factors; None: 2, 3, 4 (or every scale of the grid).
        fields: hyper-parameter filters, e.g. ``{"K": [3, 5], "C": [1, 2, 4]}``.
        ids: explicit ids, added as given.
        ids_file: a file of ids, added as listed.
    """
    fields = {k: list(v) for k, v in (fields or {}).items() if v}
    unknown = sorted(set(fields) - {f for names in FAMILY_FIELDS.values() for f in names})
    if unknown:
        raise EdgesrError(f"unknown model field(s) {', '.join(unknown)}; fields are K, C, D, S, M")
    chosen = [canonical_family(f) for f in families] if families else list(FAMILY_FIELDS)
    selected: list[str] = []
    if grid is not None:
        if grid != "paper":
            raise EdgesrError(f"unknown grid {grid!r}; the only named grid is 'paper'")
        selected = [i for i in paper_grid() if _matches(ModelSpec.parse(i), chosen, scales, fields)]
    elif families or scales or fields:
        for family in chosen:
            if not set(fields) <= set(FAMILY_FIELDS[family]):
                continue
            selected += _family_ids(family, list(scales or PAPER_SCALES), fields)
    selected += [ModelSpec.parse(i).id for i in ids]
    if ids_file is not None:
        selected += read_ids_file(ids_file)
    return list(dict.fromkeys(selected))


def _matches(spec: ModelSpec, families: list[str], scales: Sequence[int] | None,
             fields: dict[str, list[int]]) -> bool:
    if spec.family not in families or (scales and spec.scale not in scales):
        return False
    return all(name in spec.params and spec.params[name] in values for name, values in fields.items())


def _family_ids(family: str, scales: list[int], fields: dict[str, list[int]]) -> list[str]:
    names = FAMILY_FIELDS[family]
    if all(name in fields for name in names):
        ids = []
        for scale in scales:
            for values in itertools.product(*(fields[n] for n in names)):
                ids.append(ModelSpec(family, scale, dict(zip(names, values))).id)
        return ids
    return [i for i in paper_grid() if _matches(ModelSpec.parse(i), [family], scales, fields)]


def with_bicubic(ids: list[str]) -> list[str]:
    """``ids`` plus ``Bicubic_s<scale>`` for every scale among them (the plots' reference point)."""
    scales = dict.fromkeys(ModelSpec.parse(i).scale for i in ids)
    return list(dict.fromkeys([*ids, *(f"Bicubic_s{s}" for s in scales)]))
