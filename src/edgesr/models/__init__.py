"""Model ids, the seven families and the `create_model` factory."""

from edgesr.models.registry import (
    FAMILIES,
    context_pixels,
    count_parameters,
    create_model,
    family_of,
    list_models,
    load_model,
)
from edgesr.models.family import Family
from edgesr.models.spec import GRAMMAR, ModelSpec, paper_grid

__all__ = ["FAMILIES", "GRAMMAR", "Family", "ModelSpec", "context_pixels", "count_parameters", "create_model",
           "family_of", "list_models", "load_model", "paper_grid"]
