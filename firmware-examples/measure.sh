#!/usr/bin/env bash
# Flash split (edgernn's code, model and vector bytes, the rest), static RAM, peak stack and
# instructions per step for each firmware example. Needs the examples built in release,
# qemu-system-arm, binutils-arm-none-eabi, python3 (code_by_crate.py) and the insncount plugin
# (../shared/tools/qemu-insncount/build.sh).
# Usage: firmware-examples/measure.sh [insncount-plugin.so]
set -euo pipefail
cd "$(dirname "$0")"
plugin=${1:-/tmp/insncount/libinsncount.so}
counter=../../shared/tools/qemu-insncount/count-insns.sh
printf '| example | machine | flash total | model + vectors | edgernn code | other code | static RAM | peak stack | instructions/step (first model) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n'
for spec in cortex-m4f-anomaly:thumbv7em-none-eabihf:mps2-an386 cortex-m4f-text:thumbv7em-none-eabihf:mps2-an386 \
    cortex-m4f-minimal:thumbv7em-none-eabihf:mps2-an386 cortex-m0-int8:thumbv6m-none-eabi:microbit; do
    IFS=: read -r example target machine <<<"$spec"
    elf="$example/target/$target/release/$example"
    read -r _ data bss _ < <(arm-none-eabi-size "$elf" | tail -n 1)
    # Flash (the `text` of size) split by symbol and DWARF inline-chain attribution: the
    # embedded blobs and vectors, edgernn's code and tables (with the helpers only it calls),
    # and the rest (start-up, semihosting and formatting, the example's own checks).
    read -r text model_bytes edgernn_code other_code < <(python3 code_by_crate.py "$elf")
    out=$(PLUGIN="$plugin" bash "$counter" "$machine" "$elf" 2>&1)
    stack=$(sed -n 's/^stack high-water: \([0-9]*\) bytes.*/\1/p' <<<"$out")
    # Median of the first model's per-step regions (the first window's 15 steps).
    insns=$(grep '^insncount: region' <<<"$out" | awk '{print $5}' | head -n 15 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '| %s | %s | %d | %d | %d | %d | %d | %s | %s |\n' "$example" "$machine" "$text" "$model_bytes" \
        "$edgernn_code" "$other_code" "$((data + bss))" "$stack" "$insns"
done
