"""Write ``src/edgesr/weights/official.json``: id, size and sha256 of every official file.

    python benchmarks/official_manifest.py ../shared/reference/weights

Run by hand against a folder holding the official release's 1185 ``<id>.model`` files; only the
manifest ships with edgesr, never the files (GPL-3, downloaded on request).
"""

from __future__ import annotations

import argparse
import json

from edgesr.atomic import write_text_atomic
from edgesr.models import paper_grid
from edgesr.official import MANIFEST_PATH, build_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder of the official <id>.model files")
    args = parser.parse_args()
    manifest = build_manifest(args.folder)
    missing = sorted(set(paper_grid()) - set(manifest["files"]))
    if missing:
        raise SystemExit(f"{args.folder}: {len(missing)} of the paper's ids have no file, e.g. {missing[0]}")
    files = manifest.pop("files")
    head = json.dumps(manifest, sort_keys=True)[:-1]
    rows = ",\n".join(f"  {json.dumps(i)}: {json.dumps(entry)}" for i, entry in sorted(files.items()))
    write_text_atomic(MANIFEST_PATH, f"{head}, \"files\": {{\n{rows}\n}}}}\n")  # one line per file
    print(f"wrote {MANIFEST_PATH}: {len(files)} files")


if __name__ == "__main__":
    main()
