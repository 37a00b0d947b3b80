#!/usr/bin/env bash
# ARM check of the fused kernel (issue 19): cross-compiles csrc/fused.c with a test driver for a
# Cortex-A72 (Raspberry Pi 4/400) and for ARMv8.2-A with fp16 (Raspberry Pi 5, phones), runs both
# under qemu-aarch64, and compares every mode against outputs the host's torch forward expects.
# Needs the project installed in the active Python; installs gcc-aarch64-linux-gnu and qemu-user
# with apt when they are missing, and skips (exit 0, with the reason) when that is impossible.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "ARM check skipped: $*"; exit 0; }

if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    command -v apt-get >/dev/null || skip "no apt-get to install gcc-aarch64-linux-gnu and qemu-user"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || skip "apt-get needs root and sudo is not available without a password"
        SUDO="sudo -n"
    fi
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        gcc-aarch64-linux-gnu qemu-user >/dev/null; } || skip "apt-get could not install gcc-aarch64-linux-gnu qemu-user"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
EDGESR_NATIVE=0 python .ci/arm/cases.py "$work/cases.bin"
EDGESR_NATIVE=0 python .ci/arm/cases.py "$work/cases-fp16.bin" --precision fp16

# target name, compiler flags, the CPU qemu emulates, the case files (fp16: the conv in half precision)
targets=("cortex-a72|-mcpu=cortex-a72|cortex-a72|cases" "armv8.2-a+fp16|-march=armv8.2-a+fp16|max|cases cases-fp16")
pids=()
for target in "${targets[@]}"; do
    IFS='|' read -r name flags _ <<<"$target"
    aarch64-linux-gnu-gcc -O3 -static -pthread -fno-math-errno -std=gnu11 $flags \
        -o "$work/driver-$name" .ci/arm/driver.c -lm &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

status=0
for target in "${targets[@]}"; do
    IFS='|' read -r name _ cpu files <<<"$target"
    for file in $files; do
        echo "== aarch64 $name (qemu -cpu $cpu): $file"
        if ! qemu-aarch64 -cpu "$cpu" "$work/driver-$name" "$work/$file.bin" > "$work/$name.log"; then
            status=1
            grep -v '^ok' "$work/$name.log" || true
        else
            tail -n 1 "$work/$name.log"
        fi
    done
done
exit $status
