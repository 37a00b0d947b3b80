#!/usr/bin/env bash
# Wheel check (issue 19): `python -m build` gives a pure-Python wheel that carries the kernel's C
# source; installed in a fresh venv (away from the source tree) it upscales with the kernel
# compiled on first use, and with no compiler on PATH it falls back to the torch forward with
# one line saying why. Run from .ci/run with the CI venv active (it provides `build`).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

quiet() { "$@" >"$work/log" 2>&1 || { cat "$work/log"; echo "failed: $*"; exit 1; }; }
quiet python -m pip install "build>=1.2"
quiet python -m build --outdir "$work/dist" .
wheel=$(ls "$work"/dist/edgesr-*.whl)
case "$wheel" in *-py3-none-any.whl) ;; *) echo "not a pure-Python wheel: $wheel"; exit 1 ;; esac
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["edgesr/engine/csrc/fused.c", "edgesr/weights/manifest.json", "edgesr/cli.py"]
missing = [n for n in need if n not in names]
binaries = [n for n in names if n.endswith((".so", ".pyd", ".dll", ".dylib"))]
assert not missing and not binaries, f"missing {missing}, binaries {binaries}"
print(f"{sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, C source included, no binaries")
PY

python3 -m venv "$work/venv"
quiet "$work/venv/bin/pip" install --no-compile torch==2.13.0 "$wheel"  # no .pyc: 40 s instead of 100
cd "$work"
export EDGESR_CACHE="$work/cache"
"$work/venv/bin/python" - <<'PY'
import numpy as np
from PIL import Image
y, x = np.mgrid[0:45, 0:61]
rgb = np.stack([(x * 4) % 256, (y * 5) % 256, (x * y) % 256], axis=-1).astype(np.uint8)
Image.fromarray(rgb).save("in.png")
PY
"$work/venv/bin/edgesr" upscale in.png -o with_cc.png 2>"$work/cc.err"
ls "$EDGESR_CACHE"/native/fused-*.so >/dev/null || { echo "the kernel was not compiled"; cat "$work/cc.err"; exit 1; }
[ ! -s "$work/cc.err" ] || { echo "unexpected messages with a compiler:"; cat "$work/cc.err"; exit 1; }

# No compiler: only the venv on PATH, no CC. One line says why; the output is within one level.
env -u CC PATH="$work/venv/bin" EDGESR_CACHE="$work/cache2" "$work/venv/bin/edgesr" upscale in.png \
    -o without_cc.png 2>"$work/nocc.err"
cat "$work/nocc.err"
[ "$(wc -l <"$work/nocc.err")" = 1 ] && grep -q "no C compiler found" "$work/nocc.err" \
    || { echo "expected one line naming the missing compiler"; exit 1; }
"$work/venv/bin/python" - <<'PY'
import numpy as np
from PIL import Image
a, b = (np.asarray(Image.open(name), np.int16) for name in ("with_cc.png", "without_cc.png"))
assert a.shape == b.shape == (90, 122, 3), (a.shape, b.shape)
diff = int(np.abs(a - b).max())
assert diff <= 1, f"fallback differs by {diff} levels"
print(f"wheel installs and upscales: kernel compiled on first use; without a compiler the fallback is within {diff} level")
PY
