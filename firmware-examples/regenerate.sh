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
"$edgernn" export "$f32_model" --vectors "$data" --rust "$out/lstm_classifier_f32.rs"
"$edgernn" export "$int8_model" --vectors "$data" --rust "$out/lstm_classifier_int8.rs"
"$edgernn" export "$int8_model" --vectors "$data" --c "$out/lstm_classifier_int8.h"
