#!/bin/bash
# The eSR-CNN sweep of session 3 (results: train_recipe.md), run on one borrowed NVIDIA H100 in
# two rounds of 8 concurrent time-boxed runs: bash benchmarks/esr_cnn_sweep.sh DATA_DIR OUT_DIR [BUDGET_S]
# DATA_DIR holds Sun80/, Set5/ and Set14/. Ship a finished run with train_zoo.py --adopt OUT_DIR/NAME.
set -u
data=$1 out=$2 budget=${3:-330}
base="\"data\":[\"$data/Sun80\"],\"val\":[\"$data/Set5\",\"$data/Set14\"],\"pre_scale\":0.5,\"device\":\"cuda\",\"threads\":1,\"amp\":false"
mkdir -p "$out"
run() { python3 "$(dirname "$0")/train_timeboxed.py" "$1" "$budget" "{$base,$2}" "$out" > "$out/$1.log" 2>&1 & }
cnn() { echo "\"model_id\":\"$1\",\"batch_size\":${2:-64},\"patch_size\":${3:-32},\"lr\":${4:-5e-4},\"steps\":${5:-30000}"; }
# round 1: the paper's eSR-CNN_s2_C4_D3_S9 four ways, and four ids whose official weights lag smaller ones
run c439_b64 "$(cnn eSR-CNN_s2_C4_D3_S9 64 32 5e-4 20000)"
run c439_b64_amp "$(cnn eSR-CNN_s2_C4_D3_S9 64 32 5e-4 20000),\"amp\":true"
run c439_b256 "$(cnn eSR-CNN_s2_C4_D3_S9 256 32 1e-3 60000)"
run c439_b256_p48_w "$(cnn eSR-CNN_s2_C4_D3_S9 256 48 2e-3 60000),\"warmup\":2000"
run c4512 "$(cnn eSR-CNN_s2_C4_D5_S12)"
run c879 "$(cnn eSR-CNN_s2_C8_D7_S9)"
run s3c899 "$(cnn eSR-CNN_s3_C8_D9_S9)"
run s4c8912 "$(cnn eSR-CNN_s4_C8_D9_S12)"
wait
# round 2: eight of the strongest official eSR-CNN ids
for id in eSR-CNN_s2_C8_D5_S6 eSR-CNN_s2_C8_D3_S6 eSR-CNN_s2_C6_D5_S6 eSR-CNN_s3_C6_D7_S6 \
          eSR-CNN_s3_C4_D7_S9 eSR-CNN_s4_C4_D7_S15 eSR-CNN_s4_C8_D3_S9 eSR-CNN_s3_C8_D7_S3; do
  run "$id" "$(cnn "$id")"
done
wait
grep -h "ms/step\|done" "$out"/*.log
