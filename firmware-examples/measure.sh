#!/usr/bin/env bash
# Flash split (runtime code vs model and vector bytes), static RAM, peak stack and
# instructions per step for each firmware example. Needs the examples built in release,
# qemu-system-arm, binutils-arm-none-eabi and the insncount plugin
# (../shared/tools/qemu-insncount/build.sh).
# Usage: firmware-examples/measure.sh [insncount-plugin.so]
set -euo pipefail
cd "$(dirname "$0")"
plugin=${1:-/tmp/insncount/libinsncount.so}
counter=../../shared/tools/qemu-insncount/count-insns.sh
printf '| example | machine | flash total | model + vectors | runtime code | static RAM | peak stack | instructions/step (first model) |\n|---|---|---:|---:|---:|---:|---:|---:|\n'
for spec in cortex-m4f-anomaly:thumbv7em-none-eabihf:mps2-an386 cortex-m4f-text:thumbv7em-none-eabihf:mps2-an386 cortex-m0-int8:thumbv6m-none-eabi:microbit; do
    IFS=: read -r example target machine <<<"$spec"
    elf="$example/target/$target/release/$example"
    read -r text data bss _ < <(arm-none-eabi-size "$elf" | tail -n 1)
    # Bytes of the embedded blobs and test vectors (symbols from the generated sources).
    model_bytes=$(arm-none-eabi-nm -S -t d -C "$elf" \
        | awk '$4 ~ /(MODEL|VECTOR_INPUT|VECTOR_EXPECTED)/ {s += $2} END {print s + 0}')
    out=$(PLUGIN="$plugin" bash "$counter" "$machine" "$elf" 2>&1)
    stack=$(sed -n 's/^stack high-water: \([0-9]*\) bytes/\1/p' <<<"$out")
    # Median of the first model's per-step regions (the first window's 15 steps).
    insns=$(grep '^insncount: region' <<<"$out" | awk '{print $5}' | head -n 15 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '| %s | %s | %d | %d | %d | %d | %s | %s |\n' "$example" "$machine" "$text" "$model_bytes" \
        "$((text - model_bytes))" "$((data + bss))" "$stack" "$insns"
done
