#!/usr/bin/env bash
# Regenerates the firmware examples' model sources with `edgernn export` from the committed
# blobs and data. CI runs it and fails if the committed sources differ.
# Usage: firmware-examples/regenerate.sh [path/to/edgernn]
set -euo pipefail
cd "$(dirname "$0")/.."
edgernn=${1:-target/debug/edgernn}
data=tools/demo/lstm_classifier.input.npy
f32_model=tools/demo/lstm_classifier.ern
int8_model=tests/vectors/lstm_dense_softmax3_u16_f3.int8.ern

# One generated source per model, shared by the examples through `#[path]`.
out=firmware-examples/models
"$edgernn" export "$f32_model" --vectors "$data" --plan --rust "$out/lstm_classifier_f32.rs"
"$edgernn" export "$int8_model" --vectors "$data" --plan --rust "$out/lstm_classifier_int8.rs"
"$edgernn" export "$int8_model" --vectors "$data" --c "$out/lstm_classifier_int8.h"

# The anomaly detector's int8 forecaster (the README demo's model: `edgernn train` on the first
# 750 readings with --detector --quantize int8, see tools/demo/run.sh) and the host's scores
# for the first 4,500 readings, which the firmware must reproduce bit for bit.
"$edgernn" export "$out/machine_temperature_int8.ern" --plan --rust "$out/machine_temperature_int8.rs" \
    --detect tools/demo/data/machine_temperature_system_failure.csv --detect-rows 4500

# The text example's int8 character model (tools/demo/text/run.sh) and the host's generation
# for the firmware's prompt and seed, which cortex-m4f-text must reproduce token for token.
text_model=tools/demo/text/devils-dictionary.int8.ern
"$edgernn" export "$text_model" --plan --rust "$out/devils_dictionary_int8.rs"
"$edgernn" generate "$text_model" --prime "DIPLOMACY, n.  " --steps 240 --temperature 0.7 \
    --seed 1 --rust "$out/devils_dictionary_int8_generation.rs" >/dev/null

# cortex-m4f-minimal's int8 LSTM(32) + Dense forecaster (`edgernn train --data
# tools/demo/data/machine_temperature_system_failure.csv --features value --target value
# --timestamp timestamp --units 32 --window 24 --rows 2000 --epochs 20 --quantize int8`) and the
# host's outputs for 96 later readings, which the firmware must reproduce bit for bit.
"$edgernn" export "$out/machine_temperature_lstm32_int8.ern" \
    --vectors "$out/machine_temperature_window.csv" --plan --rust "$out/machine_temperature_lstm32_int8.rs"

# kernel-bench's int8 models on 8 features (made by kernel-bench/make-models.sh) and the host's
# outputs for one 16-step window, which the firmware must reproduce bit for bit on both cores.
for model in bench_lstm32_int8 bench_lstm64_int8 bench_gru64_int8; do
    "$edgernn" export "$out/$model.ern" --vectors "$out/bench_input.csv" --plan --rust "$out/$model.rs"
done
# The same models with their weights pre-packed for the kernels (`--pack interleaved4`, format
# version 3): the Cortex-M4 runs them too, to the same bits.
for model in bench_lstm32_int8 bench_lstm64_int8 bench_gru64_int8; do
    "$edgernn" export "$out/$model.ern" --pack interleaved4 --vectors "$out/bench_input.csv" \
        --plan --rust "$out/${model}_packed.rs"
done
