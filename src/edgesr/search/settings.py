"""What defines a search's numbers: `SearchSettings`, recorded in its store (a rerun must match)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgesr.errors import EdgesrError
from edgesr.train import RECIPES, recipe_kinds


@dataclass
class SearchSettings:
    """What defines a search's numbers (recorded in the store; a rerun must match).

    Attributes:
        datasets: evaluation sets (names or folders); the first one also validates training.
        train_data: training sets (names or folders); unused with ``weights``.
        steps: override the recipe's optimiser steps (None: `edgesr.train.recipe_for`).
        weights: folder of ``<id>.safetensors`` / ``<id>.model`` to evaluate instead of training.
        bench_size: output size (H, W) of the speed measurement (the paper: Full-HD).
        bench_repeats: timed runs per model (medians reported).
        device: where training and speed run ("cpu", "cuda", "auto").
        threads: torch threads for the speed measurement (None: this machine's default).
        train_threads: torch threads per train + eval task (None: torch's default; the CLI
            gives each of N parallel workers cores / N).
        seed: training seed.
    """

    datasets: list[str]
    train_data: list[str] = field(default_factory=lambda: ["T91", "General100"])
    steps: int | None = None
    weights: str | None = None
    bench_size: tuple[int, int] = (1080, 1920)
    bench_repeats: int = 5
    device: str = "cpu"
    threads: int | None = None
    train_threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.datasets:
            raise EdgesrError("a search needs at least one evaluation dataset (--datasets)")
        if self.steps is not None and self.steps < 1:
            raise EdgesrError(f"--steps must be positive, got {self.steps}")
        if min(self.bench_size) < 1 or self.bench_repeats < 1:
            raise EdgesrError("bench size and repeats must be positive")
        self.datasets = [_absolute(d) for d in self.datasets]
        self.train_data = [_absolute(d) for d in self.train_data]
        if self.weights is not None:
            folder = Path(self.weights).expanduser()
            if not folder.is_dir():
                raise EdgesrError(f"{self.weights}: not a folder of weight files")
            self.weights = str(folder.resolve())

    def identity(self, ids: list[str] | None = None) -> dict:
        """The settings a store is bound to: everything that changes a row's numbers.

        Training recipes are those of the kinds of model in ``ids`` (all kinds when None), so
        that retuning, say, the deep recipe does not orphan a store of one-layer models.
        """
        kinds = sorted(RECIPES) if ids is None else sorted(recipe_kinds(ids))
        return {"datasets": self.datasets, "protocol": "paper",
                "training": None if self.weights else {"data": self.train_data, "steps": self.steps,
                                                       "recipes": {k: RECIPES[k] for k in kinds},
                                                       "seed": self.seed},
                "weights": self.weights, "bench_size": list(self.bench_size), "device": self.device,
                "bench_threads": self.threads or torch.get_num_threads()}


def with_known_recipes(identity: dict, known: dict | None) -> dict:
    """``identity`` plus the recipes a store already records for kinds this run does not use.

    A store then grows kind by kind; a kind it knows with another recipe still differs.
    """
    mine, theirs = (identity.get("training") or {}), ((known or {}).get("training") or {})
    if not mine or not isinstance(theirs.get("recipes"), dict):
        return identity
    recipes = {**theirs["recipes"], **mine["recipes"]}
    return {**identity, "training": {**mine, "recipes": recipes}}


def only_new_kinds(identity: dict, known: dict, held: Iterable[str] = ()) -> bool:
    """True when ``identity`` equals ``known`` but for recipes of kinds the store did not have,
    and none of the ids it ``held`` is of such a kind (an id trained under a recipe the store
    did not record, say before eSR-CNN had its own, must not take the new recipe's name)."""
    def without_recipes(settings: dict) -> dict:
        training = settings.get("training")
        return {**settings, "training": {**training, "recipes": None}} if training else settings

    ours = (identity.get("training") or {}).get("recipes")
    theirs = (known.get("training") or {}).get("recipes")
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return False
    added = set(ours) - set(theirs)
    return (without_recipes(identity) == without_recipes(known)
            and all(ours.get(kind) == recipe for kind, recipe in theirs.items())
            and not recipe_kinds(held) & added)


def _absolute(dataset: str) -> str:
    """Folders as absolute paths (a resumed run may start elsewhere); names unchanged."""
    path = Path(dataset).expanduser()
    return str(path.resolve()) if path.is_dir() else str(dataset)


def default_train_threads(workers: int) -> int:
    """Torch threads per training task so that ``workers`` tasks share the cores."""
    return max(1, math.floor((os.cpu_count() or 1) / max(1, workers)))
