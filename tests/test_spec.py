"""ModelSpec: the official id grammar, parsed and printed; the paper's grid."""

from __future__ import annotations

import pytest

from edgesr import EdgesrError, ModelSpec, paper_grid


def test_every_grid_id_round_trips():
    for model_id in paper_grid():
        assert ModelSpec.parse(model_id).id == model_id


def test_grid_has_1185_distinct_ids_with_the_papers_family_counts():
    ids = paper_grid()
    assert len(ids) == len(set(ids)) == 1185
    counts: dict[str, int] = {}
    for model_id in ids:
        family = ModelSpec.parse(model_id).family
        counts[family] = counts.get(family, 0) + 1
    assert counts == {"Bicubic": 3, "eSR-MAX": 144, "eSR-TM": 144, "eSR-TR": 144, "eSR-CNN": 300,
                      "ESPCN": 300, "FSRCNN": 150}


def test_grid_equals_the_reference_list(reference_dir):
    reference = set((reference_dir / "paper_grid.txt").read_text().split())
    assert set(paper_grid()) == reference


def test_parse_exposes_family_scale_and_parameters():
    spec = ModelSpec.parse("eSR-CNN_s3_C4_D3_S9")
    assert (spec.family, spec.scale, spec.C, spec.D, spec.S) == ("eSR-CNN", 3, 4, 3, 9)
    assert ModelSpec.parse("FSRCNN_s2_D56_S12_M4").params == {"D": 56, "S": 12, "M": 4}


def test_ids_outside_the_grid_still_parse():
    assert ModelSpec.parse("eSR-TM_s8_K9_C32").id == "eSR-TM_s8_K9_C32"


@pytest.mark.parametrize("bad", ["", "eSR-TM", "eSR-TM_s2_K7", "eSR-TM_s2_C16_K7", "eSR-XX_s2_K3_C1",
                                 "Bicubic_2", "ESPCN_s2_D16_S12_M1", "eSR-TM_s2_K7_Cx", "eSR-TM_s1_K7_C16",
                                 "eSR-MAX_s2_K4_C2", "eSR-TR_s2_K3_C0"])
def test_malformed_ids_are_rejected_with_the_grammar(bad):
    with pytest.raises(EdgesrError) as error:
        ModelSpec.parse(bad)
    assert "\n" not in str(error.value)
    if bad.count("_") and not bad.endswith(("s1_K7_C16", "K4_C2", "K3_C0")):
        assert "eSR-MAX_s#_K#_C#" in str(error.value)
