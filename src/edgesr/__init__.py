"""edgesr: the edge-SR family of one-layer super-resolution models, ready for real use.

>>> import edgesr
>>> model = edgesr.create_model("eSR-MAX_s2_K3_C2")
>>> edgesr.ModelSpec.parse("eSR-MAX_s2_K3_C2").scale
2
>>> len(edgesr.paper_grid())
1185
"""

from edgesr.engine import Upscaler
from edgesr.errors import EdgesrError
from edgesr.models import ModelSpec, count_parameters, create_model, list_models, load_model, paper_grid

__version__ = "0.1.0"

__all__ = ["EdgesrError", "ModelSpec", "Upscaler", "count_parameters", "create_model", "list_models",
           "load_model", "paper_grid", "__version__"]
