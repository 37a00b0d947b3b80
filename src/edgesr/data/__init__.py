"""Datasets: a catalog of benchmark/training sets, a local cache, and the training patch sampler.

>>> from edgesr.data import add, resolve_dataset, list_images
>>> add("Set5", "/data/Set5")                        # doctest: +SKIP
>>> [p.name for p in list_images(resolve_dataset("Set5"))]   # doctest: +SKIP
['baby.png', 'bird.png', 'butterfly.png', 'head.png', 'woman.png']

Names resolve to folders of HR images (see `resolve_dataset`); `fetch` downloads catalog sets
into ``$EDGESR_DATA`` (default: the user cache dir + ``edgesr``). `PatchSampler` (in
``edgesr.data.patches``) turns folders into seeded, resumable batches of LR/HR luma patches.
"""

from edgesr.data.cache import cache_dir
from edgesr.data.catalog import CATALOG, DatasetEntry, Source, catalog_entry
from edgesr.data.datasets import (DatasetStatus, add, canonical_name, fetch, list_datasets, list_images,
                                  pending_download, resolve_dataset)
from edgesr.data.patches import PatchBatch, PatchSampler, load_pairs

__all__ = ["CATALOG", "DatasetEntry", "DatasetStatus", "PatchBatch", "PatchSampler", "Source", "add",
           "cache_dir", "canonical_name", "catalog_entry", "fetch", "list_datasets", "list_images",
           "load_pairs", "pending_download", "resolve_dataset"]
