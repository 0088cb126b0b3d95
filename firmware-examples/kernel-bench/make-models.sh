#!/usr/bin/env bash
# Makes kernel-bench's models (committed as firmware-examples/models/bench_*_int8.ern; run once,
# CI only exports them): a deterministic synthetic series of 8 features (sines of different
# periods plus LCG noise) and a target, then `edgernn train` of int8 LSTM(32), LSTM(64) and
# GRU(64) forecasters on it. The weights only need to be realistic: the counts depend on shapes.
# Usage: firmware-examples/kernel-bench/make-models.sh [path/to/edgernn]
set -euo pipefail
cd "$(dirname "$0")/../.."
edgernn=${1:-target/release/edgernn}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
awk 'BEGIN {
    s = 12345; print "f0,f1,f2,f3,f4,f5,f6,f7,y"
    for (t = 0; t < 4000; t++) {
        line = ""; sum = 0
        for (k = 0; k < 8; k++) {
            s = (s * 1103515245 + 12345) % 2147483648; noise = (s / 2147483648 - 0.5) * 0.1
            v = sin(t * (0.05 + 0.031 * k) + k) * 0.5 + noise; sum += v * (k % 3 - 1)
            line = line (k ? "," : "") sprintf("%.5f", v)
        }
        print line "," sprintf("%.5f", sum / 4)
    }
}' >"$work/bench.csv"
out=firmware-examples/models
for spec in lstm:32 lstm:64 gru:64; do
    IFS=: read -r cell units <<<"$spec"
    "$edgernn" train --data "$work/bench.csv" --features f0,f1,f2,f3,f4,f5,f6,f7 --target y --cell "$cell" --units "$units" \
        --window 16 --epochs 2 --seed 0 --quantize int8 --quiet -o "$work/$cell$units.ern"
    cp "$work/$cell$units.int8.ern" "$out/bench_$cell${units}_int8.ern"
done
# The vectors: the first window's 16 rows of the features.
sed -n 2,17p "$work/bench.csv" | cut -d, -f1-8 | { echo "f0,f1,f2,f3,f4,f5,f6,f7"; cat; } >"$out/bench_input.csv"
