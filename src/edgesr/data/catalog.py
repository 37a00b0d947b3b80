"""The dataset catalog: name -> where its archive lives, how to check it, where the HR images are.

Every entry lists one or more `Source` archives, tried in order by `edgesr.data.fetch`. A source
names the folder inside the archive that holds the HR images (``subdir``, an fnmatch pattern on
the folder path; ``None`` = the one folder of images found in the archive) and which files in it
are HR images (``patterns``, tried in order on the file name).

Checksums: a ``sha256`` or ``md5`` is filled in only where a public source states it (the
``checksum_note`` says which); none of the URLs or checksums could be checked from the machine
this catalog was written on (no internet). Where no checksum is known, the first download
records the archive's sha256 in the cache's ``registry.json`` and prints it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from edgesr.errors import EdgesrError

ROLES = ("test", "train")


@dataclass(frozen=True)
class Source:
    """One downloadable archive (zip, tar, tar.gz/bz2/xz) and where its HR images are."""

    url: str
    subdir: str | None = None
    patterns: tuple[str, ...] = ("*",)
    sha256: str | None = None
    md5: str | None = None
    checksum_note: str = ""

    def __post_init__(self) -> None:
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"{self.url}: sha256 must be 64 lowercase hex digits")
        if self.md5 is not None and not re.fullmatch(r"[0-9a-f]{32}", self.md5):
            raise ValueError(f"{self.url}: md5 must be 32 lowercase hex digits")

    @property
    def filename(self) -> str:
        """The archive's file name in the download cache (last URL path component)."""
        name = self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if "." in name:
            return name
        return f"{name or 'archive'}-{hashlib.sha1(self.url.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class DatasetEntry:
    """A named image set: role ``test`` (benchmark) or ``train``, expected image count, sources."""

    name: str
    role: str
    images: int | None
    description: str
    sources: tuple[Source, ...]
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"{self.name}: role must be one of {ROLES}, got {self.role!r}")


# The EDSR authors' benchmark archive: Set5, Set14, B100, Urban100 (HR + MATLAB bicubic LR).
_EDSR_BENCHMARK = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
_EDSR_SHA256 = "80c21c333bbf6ceb5308b7243761f8284478274413a97b96f1d63e9045fd93e8"
_EDSR_NOTE = "sha256 as published in a third-party reproduction's README; not verified by edgesr"
_HF = "https://huggingface.co/datasets"
_DIV2K = "http://data.vision.ee.ethz.ch/cvl/DIV2K"
_TORCHSR_NOTE = "md5 as listed by torchSR (Coloquinte/torchSR); not verified by edgesr"


def _edsr(folder: str) -> Source:
    return Source(_EDSR_BENCHMARK, subdir=f"benchmark/{folder}/HR", sha256=_EDSR_SHA256,
                  checksum_note=_EDSR_NOTE)


CATALOG: dict[str, DatasetEntry] = {entry.name: entry for entry in [
    DatasetEntry("Set5", "test", 5, "Bevilacqua et al. 2012: baby, bird, butterfly, head, woman", (
        _edsr("Set5"),
        Source(f"{_HF}/eugenesiow/Set5/resolve/main/data/Set5_HR.tar.gz"),
    )),
    DatasetEntry("Set14", "test", 14, "Zeyde et al. 2010: 14 images, 2 of them grayscale in some copies", (
        _edsr("Set14"),
        Source(f"{_HF}/eugenesiow/Set14/resolve/main/data/Set14_HR.tar.gz"),
    )),
    DatasetEntry("BSDS100", "test", 100, "Berkeley segmentation test images (B100, BSD100)", (
        _edsr("B100"),
        Source(f"{_HF}/eugenesiow/BSD100/resolve/main/data/BSD100_HR.tar.gz"),
    ), aliases=("B100", "BSD100")),
    DatasetEntry("Urban100", "test", 100, "Huang et al. 2015: urban scenes with regular structures", (
        _edsr("Urban100"),
        Source(f"{_HF}/eugenesiow/Urban100/resolve/main/data/Urban100_HR.tar.gz"),
    )),
    DatasetEntry("Manga109", "test", 109, "Matsui et al. 2017: manga volume covers (official copies: "
                 "manga109.org, on request)", (
        Source(f"{_HF}/goodfellowliu/Manga109/resolve/main/Manga109.zip", patterns=("*",)),
    )),
    DatasetEntry("T91", "train", 91, "Yang et al. 2010: the 91 training images of SRCNN", (
        Source("http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_train.zip", subdir="*Train",
               sha256="001146419f7acfb12a3e7929c8acd5de88a08d687d6881085f81321ad6982b1a",
               checksum_note="sha256 as published in a third-party README (retrieved 2026-09-01);"
                             " not verified by edgesr"),
    ), aliases=("91-image",)),
    DatasetEntry("General100", "train", 100, "Dong et al. 2016 (FSRCNN): 100 uncompressed BMP images", (
        Source("https://drive.google.com/uc?export=download&id=0B7tU5Pj1dfCMVVdJelZqV0prWnM"),
    ), aliases=("General-100",)),
    DatasetEntry("DIV2K", "train", 800, "Agustsson & Timofte 2017: 800 2K training images (NTIRE)", (
        Source(f"{_DIV2K}/DIV2K_train_HR.zip", subdir="DIV2K_train_HR",
               md5="bdc2d9338d4e574fe81bf7d158758658", checksum_note=_TORCHSR_NOTE),
    ), aliases=("DIV2K-train",)),
    DatasetEntry("DIV2K-valid", "test", 100, "DIV2K's 100 validation images", (
        Source(f"{_DIV2K}/DIV2K_valid_HR.zip", subdir="DIV2K_valid_HR",
               md5="9fcdda83005c5e5997799b69f955ff88", checksum_note=_TORCHSR_NOTE),
    )),
    DatasetEntry("Sun80", "train", 80, "Sun & Hays 2012: 80 natural scenes, JPEG; edgesr trains on it"
                 " where T91/General100 are missing (pre-downscale to remove JPEG artefacts)", (
        Source("https://uofi.box.com/shared/static/rirohj4773jl7ef752r330rtqw23djt8.zip",
               patterns=("*_HR.*", "*")),
    ), aliases=("Sun-Hays80", "SunHays80", "Sun_Hays_80")),
]}


def catalog_entry(name: str) -> DatasetEntry | None:
    """The catalog entry for a name or alias, case-insensitively; ``None`` when unknown."""
    key = name.casefold()
    for entry in CATALOG.values():
        if key == entry.name.casefold() or key in (alias.casefold() for alias in entry.aliases):
            return entry
    return None


def require_entry(name: str) -> DatasetEntry:
    """Like `catalog_entry` but an unknown name is an `EdgesrError` listing the catalog."""
    entry = catalog_entry(name)
    if entry is None:
        raise EdgesrError(f"{name}: not in the dataset catalog (known: {', '.join(CATALOG)})")
    return entry
