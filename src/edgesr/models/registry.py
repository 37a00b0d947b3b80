"""One factory for every model: ``create_model(id, weights=...)``.

>>> model = create_model("eSR-TM_s2_K7_C16")          # fresh (Xavier + centre tap) init
>>> sum(p.numel() for p in model.parameters())
6272
>>> create_model("eSR-TM_s2_K7_C16", weights="eSR-TM_s2_K7_C16.model")  # doctest: +SKIP
"""

from __future__ import annotations

from os import PathLike

from torch import nn

from edgesr.errors import EdgesrError
from edgesr.models.baselines import ESPCN_FAMILY, FSRCNN_FAMILY
from edgesr.models.classic import BICUBIC
from edgesr.models.esr import ESR_CNN, ESR_MAX, ESR_TM, ESR_TR
from edgesr.models.family import Family
from edgesr.models.spec import ModelSpec, canonical_family, paper_grid
from edgesr.weights import load_weights_into, shipped_manifest, shipped_weights_path

#: Every family by name, each declared next to its definition (`edgesr.models.family.Family`).
FAMILIES: dict[str, Family] = {f.name: f for f in (BICUBIC, ESR_MAX, ESR_TM, ESR_TR, ESR_CNN, ESPCN_FAMILY,
                                                    FSRCNN_FAMILY)}


def family_of(model: str | ModelSpec | nn.Module) -> Family:
    """The `Family` of an id, a spec or a built model: where every per-family fact lives.

    >>> family_of("eSR-TM_s2_K7_C16").context(ModelSpec.parse("eSR-TM_s2_K7_C16"))
    3
    """
    if isinstance(model, nn.Module):
        model = model.spec
    spec = model if isinstance(model, ModelSpec) else ModelSpec.parse(model)
    return FAMILIES[spec.family]


def create_model(model_id: str | ModelSpec, weights: str | PathLike | None = None,
                 pretrained: bool = False) -> nn.Module:
    """Build the model named by ``model_id``, optionally loading weights.

    Args:
        model_id: an id in the official grammar, e.g. ``"eSR-MAX_s2_K3_C2"`` (see `ModelSpec`).
        weights: path to an official ``.model`` file or an edgesr ``.safetensors`` file; loaded
            with ``strict=True``. Without it the model has its training initialisation (Bicubic:
            the exact bicubic kernel).
        pretrained: load the weights edgesr trained and ships for this id (``edgesr models
            --shipped`` lists them).
    Returns:
        an ``nn.Module`` in eval mode, taking (N, 1, H, W) luma in 0..1 to (N, 1, sH, sW); its
        ``spec`` attribute holds the parsed id.
    """
    spec = model_id if isinstance(model_id, ModelSpec) else ModelSpec.parse(model_id)
    family = FAMILIES[spec.family]
    model = family.module(spec)
    model.spec = spec
    if pretrained and weights is not None:
        raise EdgesrError("pass either weights or pretrained=True, not both")
    if pretrained and family.learned:
        weights = shipped_weights_path(spec.id)
    if weights is not None:
        load_weights_into(model, weights)
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    """Number of stored weights (the real tensor sizes, fixed Bicubic kernel included)."""
    return sum(p.numel() for p in model.parameters())


def load_model(model: str | ModelSpec | nn.Module, weights: str | PathLike | None = None,
               pretrained: bool | None = None) -> nn.Module:
    """A model ready to use: the one rule by which every entry point (`Upscaler`, `evaluate`,
    `export_onnx`, `explain`, the CLI) turns what a user gives into a module.

    * a built module passes through (its weights are the caller's business);
    * ``weights``: that file, loaded strictly;
    * ``pretrained=False``: the training initialisation, an untrained network, only when asked;
    * otherwise the weights edgesr ships for the id (Bicubic: its exact kernel). A freshly
      initialised network is never what a user means, so an id that ships nothing and has no
      file is a clear error.

    >>> load_model("eSR-TM_s2_K7_C16").spec.id
    'eSR-TM_s2_K7_C16'
    >>> load_model("eSR-TM_s2_K3_C1", pretrained=False).spec.id   # untrained: asked for
    'eSR-TM_s2_K3_C1'
    """
    if isinstance(model, nn.Module):
        if weights is not None or pretrained is not None:
            raise EdgesrError("pass weights or pretrained with a model id, not with a built module")
        if not isinstance(getattr(model, "spec", None), ModelSpec):
            raise EdgesrError("expected a model id or a module from edgesr.create_model (it has no .spec)")
        return model
    if weights is not None and pretrained:
        raise EdgesrError("pass either weights or pretrained=True, not both")
    if weights is not None or pretrained is False:
        return create_model(model, weights=weights)
    return create_model(model, pretrained=True)


def list_models(family: str | None = None, scale: int | None = None, shipped: bool = False) -> list[str]:
    """Ids of the paper's grid (``shipped=True``: those whose trained weights ship with edgesr,
    in the manifest's order), optionally filtered by family (any case) and scale.

    >>> list_models("esr-tm", scale=2, shipped=True)
    ['eSR-TM_s2_K7_C16']
    """
    ids = list(shipped_manifest()["models"]) if shipped else paper_grid()
    family = None if family is None else canonical_family(family)
    specs = [ModelSpec.parse(i) for i in ids]
    return [s.id for s in specs if (family is None or s.family == family) and (scale is None or s.scale == scale)]


def context_pixels(spec: ModelSpec | str) -> int:
    """LR pixels on each side that can influence an output pixel (the model's finite support).

    Padding a tile by this many real pixels makes tiled upscaling equal untiled upscaling.
    """
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    return FAMILIES[spec.family].context(spec)
