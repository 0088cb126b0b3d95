#!/usr/bin/env bash
# Instructions per step of the int8 models on a Cortex-M4F (mps2-an386, DSP kernels) and a
# Cortex-M0 (microbit), counted by ../../../shared/tools/qemu-insncount: the median of each
# model's 16 steps, and per multiply-accumulate. Builds both targets in release first. The run
# also checks every output against the host's, so a count is only printed for a matching run.
# Usage: firmware-examples/kernel-bench/count.sh [insncount-plugin.so]
set -euo pipefail
cd "$(dirname "$0")"
plugin=${1:-/tmp/insncount/libinsncount.so}
counter=${SHARED:-../../../shared}/tools/qemu-insncount/count-insns.sh
# Model order and MACs per step (LSTM 4H(I+H), GRU 3H(I+H), I = 8), as src/main.rs runs them;
# the Cortex-M4 then runs the same models with pre-packed weights (interleaved4).
row_major=(lstm32:5120 lstm64:18432 gru64:13824)
packed=(lstm32-packed:5120 lstm64-packed:18432 gru64-packed:13824)
steps=16
printf '| core | model | MACs/step | instructions/step | per MAC |\n|---|---|---:|---:|---:|\n'
for spec in thumbv7em-none-eabihf:mps2-an386:Cortex-M4F thumbv6m-none-eabi:microbit:Cortex-M0; do
    IFS=: read -r target machine core <<<"$spec"
    models=("${row_major[@]}")
    if [ "$core" = Cortex-M4F ]; then models+=("${packed[@]}"); fi
    cargo build --release --locked --target "$target" -q
    elf="target/$target/release/kernel-bench"
    if ! out=$(PLUGIN="$plugin" bash "$counter" "$machine" "$elf" 2>&1); then
        printf '%s\n' "$out" | grep -E 'MISMATCH|failed' >&2 || true
        echo "kernel-bench failed on $core" >&2
        exit 1
    fi
    counts=$(grep '^insncount: region' <<<"$out" | awk '{print $5}')
    for k in "${!models[@]}"; do
        IFS=: read -r name macs <<<"${models[$k]}"
        median=$(sed -n "$((k * steps + 1)),$(((k + 1) * steps))p" <<<"$counts" | sort -n |
            awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
        printf '| %s | %s | %d | %d | %.2f |\n' "$core" "$name" "$macs" "$median" \
            "$(echo "$median / $macs" | bc -l)"
    done
done
