"""Read zip and tar(.gz/.bz2/.xz) archives safely and pull out the HR images of a dataset.

Safety: every member name is checked before anything is written; an absolute path, a drive
letter or a ``..`` component rejects the whole archive (path traversal). Only regular files are
ever written, each by edgesr itself to ``<folder>/<basename>`` (links, devices and directories in
the archive are never materialised), so nothing can land outside the target folder.
"""

from __future__ import annotations

import fnmatch
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgesr.errors import EdgesrError
from edgesr.imaging import is_image_path

HR_FOLDER_NAMES = ("hr", "gt", "original", "groundtruth", "ground_truth")
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, ValueError)


@dataclass(frozen=True)
class Member:
    """A regular file in an archive: its normalised posix path, folder and file name."""

    name: str
    path: str

    @property
    def folder(self) -> str:
        parent = str(PurePosixPath(self.path).parent)
        return "" if parent == "." else parent

    @property
    def basename(self) -> str:
        return PurePosixPath(self.path).name


def safe_member_path(name: str, archive: Path) -> str:
    """Normalised relative posix path of a member; an unsafe one raises `EdgesrError`."""
    posix = name.replace("\\", "/")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if posix.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise EdgesrError(f"{archive.name}: unsafe member path {name!r} (path traversal); archive rejected")
    return "/".join(parts)


def list_members(archive: Path) -> list[Member]:
    """Regular-file members of a zip or tar archive; raises `EdgesrError` if corrupt or unsafe."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                infos = handle.infolist()
                names = [info.filename for info in infos]
                files = [info.filename for info in infos if not info.is_dir() and not _zip_is_link(info)]
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as handle:
                tar_infos = handle.getmembers()
                names = [info.name for info in tar_infos]  # link targets are never followed
                files = [info.name for info in tar_infos if info.isfile()]
        else:
            raise EdgesrError(f"{archive.name}: not a zip or tar archive (corrupt or incomplete download?)")
    except EdgesrError:
        raise
    except _CORRUPT as error:
        raise EdgesrError(f"{archive.name}: corrupt archive ({error})") from None
    for name in names:
        safe_member_path(name, archive)
    return [Member(name, safe_member_path(name, archive)) for name in files]


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def select_hr(members: list[Member], subdir: str | None, patterns: tuple[str, ...],
              archive: Path) -> list[Member]:
    """The HR image members: in the folder matching ``subdir`` (fnmatch on the folder path; ``None``:
    the only folder holding matching images, or the one named HR/GT/original), whose file
    names match the first of ``patterns`` that matches anything."""
    images = [m for m in members if is_image_path(m.basename) and not _hidden(m.path)]
    for pattern in patterns:
        matching = [m for m in images if fnmatch.fnmatch(m.basename.casefold(), pattern.casefold())]
        folders = sorted({m.folder for m in matching})
        if subdir is not None:
            folders = [f for f in folders if fnmatch.fnmatch(f.casefold(), subdir.casefold())]
        if not folders:
            continue
        if len(folders) > 1:
            named = [f for f in folders if PurePosixPath(f).name.casefold() in HR_FOLDER_NAMES]
            if len(named) != 1:
                shown = ", ".join(folders[:6]) + (", ..." if len(folders) > 6 else "")
                raise EdgesrError(f"{archive.name}: several folders hold images ({shown}); extract it"
                                  " yourself and register the HR folder with `edgesr datasets add NAME DIR`")
            folders = named
        return sorted((m for m in matching if m.folder == folders[0]), key=lambda m: m.basename)
    where = f"folder {subdir!r}" if subdir else "any folder"
    found = sorted({m.folder or "." for m in images})[:6]
    raise EdgesrError(f"{archive.name}: no images matching {'/'.join(patterns)} in {where}"
                      f" (folders with images: {', '.join(found) or 'none'})")


def _hidden(path: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.split("/"))


def extract_members(archive: Path, members: list[Member], folder: Path) -> None:
    """Write ``members`` as ``folder/<basename>`` (flat; names must be unique); corrupt data raises.

    The caller owns ``folder`` (a fresh temporary one) and removes it on failure.
    """
    wanted = {m.name: m for m in members}
    if len({m.basename for m in members}) != len(members):
        raise EdgesrError(f"{archive.name}: the selected images have clashing file names")
    folder.mkdir(parents=True, exist_ok=True)
    done = 0
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                for name, member in wanted.items():
                    with handle.open(name) as source, (folder / member.basename).open("wb") as target:
                        shutil.copyfileobj(source, target, 1 << 20)
                    done += 1
        else:
            with tarfile.open(archive) as handle:
                for info in handle:  # one sequential pass: fast on compressed tars
                    member = wanted.get(info.name)
                    if member is None or not info.isfile():
                        continue
                    source = handle.extractfile(info)
                    if source is None:
                        continue
                    with source, (folder / member.basename).open("wb") as target:
                        shutil.copyfileobj(source, target, 1 << 20)
                    done += 1
    except _CORRUPT as error:
        raise EdgesrError(f"{archive.name}: corrupt archive ({error})") from None
    if done != len(members):
        raise EdgesrError(f"{archive.name}: corrupt archive (extracted {done} of {len(members)} images)")
