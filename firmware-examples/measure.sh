#!/usr/bin/env bash
# Flash split (edgernn's code, model and vector bytes, the rest), static RAM, peak stack and
# instructions per step for each firmware example. Needs the examples built in release,
# qemu-system-arm, qemu-system-misc (riscv32), binutils-arm-none-eabi and the host's binutils,
# python3 (code_by_crate.py; for RISC-V also rustup's llvm-tools component) and the insncount
# plugin (../shared/tools/qemu-insncount/build.sh).
# Usage: firmware-examples/measure.sh [insncount-plugin.so]
set -euo pipefail
cd "$(dirname "$0")"
plugin=${1:-/tmp/insncount/libinsncount.so}
insncount=../../shared/tools/qemu-insncount
counter=$insncount/count-insns.sh

# count-insns.sh for a RISC-V ELF on qemu-system-riscv32 (count-insns.sh runs Arm machines
# only): the same plugin and markers, the QEMU options of esp32c3's runner, and the same output
# (the firmware's, then the plugin's `insncount:` lines); exits with the firmware's status.
count_insns_riscv() {
    local machine=$1 elf=$2 start stop log rc
    [ -f "$plugin" ] || sh "$insncount/build.sh" "$plugin" >/dev/null
    start=$(nm "$elf" | awk '$3=="bench_start"{print "0x"$1}')
    stop=$(nm "$elf" | awk '$3=="bench_stop"{print "0x"$1}')
    if [ -z "$start" ] || [ -z "$stop" ]; then
        echo "no bench_start/bench_stop symbols in $elf" >&2
        return 2
    fi
    log=$(mktemp)
    rc=0
    qemu-system-riscv32 -machine "$machine" -cpu rv32 -bios none -display none -monitor none \
        -serial none -chardev stdio,id=sh0 -semihosting-config enable=on,target=native,chardev=sh0 \
        -plugin "$plugin,start=$start,stop=$stop" -d plugin -D "$log" -kernel "$elf" || rc=$?
    cat "$log"
    rm -f "$log"
    return $rc
}

printf '| example | machine | flash total | model + vectors | edgernn code | other code | static RAM | peak stack | instructions/step (first model) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n'
for spec in cortex-m4f-anomaly:thumbv7em-none-eabihf:mps2-an386 cortex-m4f-text:thumbv7em-none-eabihf:mps2-an386 \
    cortex-m4f-minimal:thumbv7em-none-eabihf:mps2-an386 cortex-m0-int8:thumbv6m-none-eabi:microbit \
    esp32c3:riscv32imc-unknown-none-elf:virt; do
    IFS=: read -r example target machine <<<"$spec"
    elf="$example/target/$target/release/$example"
    if [[ $target == riscv32* ]]; then
        # riscv-rt gives the free RAM to NOLOAD `.heap` and `.stack` sections, which `size`
        # counts as bss: the statics are `.data`, `.bss` and `.uninit` alone.
        static_ram=$(size -A "$elf" | awk '$1 ~ /^\.(data|bss|uninit)$/ {n += $2} END {print n}')
    else
        read -r _ data bss _ < <(arm-none-eabi-size "$elf" | tail -n 1)
        static_ram=$((data + bss))
    fi
    # Flash (the `text` of size) split by symbol and DWARF inline-chain attribution: the
    # embedded blobs and vectors, edgernn's code and tables (with the helpers only it calls),
    # and the rest (start-up, semihosting and formatting, the example's own checks).
    read -r text model_bytes edgernn_code other_code < <(python3 code_by_crate.py "$elf")
    if [[ $target == riscv32* ]]; then
        out=$(count_insns_riscv "$machine" "$elf" 2>&1)
    else
        out=$(PLUGIN="$plugin" bash "$counter" "$machine" "$elf" 2>&1)
    fi
    stack=$(sed -n 's/^stack high-water: \([0-9]*\) bytes.*/\1/p' <<<"$out")
    # Median of the first model's per-step regions (the first window's 15 steps).
    insns=$(grep '^insncount: region' <<<"$out" | awk '{print $5}' | head -n 15 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '| %s | %s | %d | %d | %d | %d | %d | %s | %s |\n' "$example" "$machine" "$text" "$model_bytes" \
        "$edgernn_code" "$other_code" "$static_ram" "$stack" "$insns"
done
