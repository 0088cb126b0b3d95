#!/usr/bin/env bash
# The text example: trains a character-level LSTM on The Devil's Dictionary (letters A to C,
# public domain; see README.md), quantizes it to int8, and generates text with both blobs on
# the host with a fixed seed. About one minute of training on one core.
#
# Usage: tools/demo/text/run.sh [work-dir]     (default: target/text-example)
#   EDGERNN=path/to/edgernn to use a built binary; UPDATE=1 to also replace the committed
#   int8 blob that the Cortex-M4F example and CI use (firmware-examples/regenerate.sh then
#   rewrites their sources).
set -euo pipefail
cd "$(dirname "$0")/../../.."
edgernn=${EDGERNN:-target/release/edgernn}
if [ -z "${EDGERNN:-}" ]; then
    cargo build --release -p edgernn-tools --bin edgernn
fi
work=${1:-target/text-example}
mkdir -p "$work"
data=tools/demo/text/devils-dictionary-a-c.txt

# Same options, same seed: the same blob, bit for bit, on the same machine (candle's float
# kernels may round differently on another CPU, which is why CI uses the committed blob).
"$edgernn" train --task next-token --data "$data" --window 64 --units 128 --embedding 16 \
    --batch-size 32 --learning-rate 0.003 --epochs 60 --patience 5 --seed 0 \
    --quantize int8 -o "$work/devils-dictionary.ern"

# The prompt, seed and temperature the firmware example uses (firmware-examples/regenerate.sh).
prompt="DIPLOMACY, n.  "
for blob in "$work/devils-dictionary.ern" "$work/devils-dictionary.int8.ern"; do
    printf '\n== %s, prompt "%s", seed 1, temperature 0.7:\n' "$blob" "$prompt"
    "$edgernn" generate "$blob" --prime "$prompt" --steps 240 --temperature 0.7 --seed 1
done

if [ "${UPDATE:-0}" = 1 ]; then
    cp "$work/devils-dictionary.int8.ern" tools/demo/text/devils-dictionary.int8.ern
    echo "updated tools/demo/text/devils-dictionary.int8.ern; now run firmware-examples/regenerate.sh"
fi
