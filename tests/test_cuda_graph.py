"""`backend="cudagraph"`: the torch forward replayed from CUDA graphs (runs only on CUDA)."""

from __future__ import annotations

import pytest
import torch

from edgesr.engine import make_backend
from edgesr.errors import EdgesrError
from edgesr.models import create_model


def test_cudagraph_on_the_cpu_is_a_clear_error():
    with pytest.raises(EdgesrError, match="cudagraph backend needs a CUDA device"):
        make_backend("cudagraph", create_model("ESPCN_s2_D4_S6"), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_replayed_graphs_equal_the_eager_forward_for_each_shape():
    torch.manual_seed(0)
    model = create_model("eSR-CNN_s2_C4_D3_S9").eval()
    backend = make_backend("cudagraph", model, device="cuda", dtype="float32")
    for shape in [(1, 1, 17, 23), (2, 1, 9, 31), (1, 1, 17, 23)]:
        lr = torch.rand(shape)
        with torch.inference_mode():
            expected = model.cuda()(lr.cuda()).cpu()
        assert torch.allclose(backend(lr), expected, atol=1e-5)
    first = backend.forward(torch.rand(1, 1, 8, 8, device="cuda"))
    kept = first.clone()
    backend.forward(torch.rand(1, 1, 8, 8, device="cuda"))
    assert torch.equal(first, kept)  # the second call did not overwrite the first output
