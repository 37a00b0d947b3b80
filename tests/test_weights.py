"""Weight files: edgesr safetensors round trip, official pickles, clear errors on mismatch."""

from __future__ import annotations

import pytest
import torch

from edgesr import EdgesrError, create_model
from edgesr.weights import read_state_dict, save_weights


def test_safetensors_round_trip_keeps_weights_and_id(tmp_path):
    model = create_model("eSR-TR_s3_K5_C2")
    path = save_weights(model, tmp_path / "m.safetensors", record={"note": "test"})
    loaded = create_model("eSR-TR_s3_K5_C2", weights=path)
    assert torch.equal(loaded.filter.weight, model.filter.weight)
    _, metadata = read_state_dict(path)
    assert metadata["model_id"] == "eSR-TR_s3_K5_C2"


def test_official_style_pickle_loads(tmp_path):
    source = create_model("ESPCN_s2_D4_S6")
    torch.save(source.state_dict(), tmp_path / "ESPCN_s2_D4_S6.model")
    loaded = create_model("ESPCN_s2_D4_S6", weights=tmp_path / "ESPCN_s2_D4_S6.model")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))


def test_weights_of_another_shape_name_the_file_and_the_tensor(tmp_path):
    torch.save(create_model("eSR-TM_s2_K7_C16").state_dict(), tmp_path / "w.model")
    with pytest.raises(EdgesrError, match=r"w\.model: weights do not fit eSR-TM_s2_K5_C16 \(filter\.weight"):
        create_model("eSR-TM_s2_K5_C16", weights=tmp_path / "w.model")


def test_weights_of_another_family_report_missing_keys(tmp_path):
    torch.save(create_model("ESPCN_s2_D4_S6").state_dict(), tmp_path / "w.pt")
    with pytest.raises(EdgesrError, match="missing filter.weight"):
        create_model("eSR-MAX_s2_K3_C2", weights=tmp_path / "w.pt")


def test_safetensors_saved_for_another_id_is_refused(tmp_path):
    path = save_weights(create_model("eSR-MAX_s2_K3_C2"), tmp_path / "a.safetensors")
    with pytest.raises(EdgesrError, match="holds weights for eSR-MAX_s2_K3_C2, not eSR-MAX_s2_K3_C1"):
        create_model("eSR-MAX_s2_K3_C1", weights=path)


@pytest.mark.parametrize("name,content", [("x.model", b"not a pickle"), ("x.safetensors", b"\x00" * 20),
                                          ("empty.pt", b"")])
def test_garbage_files_give_one_line_errors(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(EdgesrError) as error:
        create_model("eSR-MAX_s2_K3_C2", weights=tmp_path / name)
    assert str(error.value).startswith(str(tmp_path / name)) and "\n" not in str(error.value)


def test_pickles_with_code_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"filter.weight": Evil()}, tmp_path / "evil.model")
    with pytest.raises(EdgesrError, match="evil.model: not a readable PyTorch weight file"):
        create_model("eSR-MAX_s2_K3_C2", weights=tmp_path / "evil.model")


def test_weight_lookup_prefers_safetensors_then_the_official_suffixes(tmp_path):
    from edgesr.weights import WEIGHT_SUFFIXES, weight_file, weight_files

    for name in ("eSR-MAX_s2_K3_C1.pth", "eSR-MAX_s2_K3_C1.model", "Bicubic_s2.pt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert WEIGHT_SUFFIXES[0] == ".safetensors"
    assert weight_file("eSR-MAX_s2_K3_C1", tmp_path).name == "eSR-MAX_s2_K3_C1.model"
    assert weight_file("eSR-TM_s2_K3_C1", tmp_path) is None
    (tmp_path / "eSR-MAX_s2_K3_C1.safetensors").write_bytes(b"")
    assert {k: p.name for k, p in weight_files(tmp_path).items()} == {
        "Bicubic_s2": "Bicubic_s2.pt", "eSR-MAX_s2_K3_C1": "eSR-MAX_s2_K3_C1.safetensors"}
