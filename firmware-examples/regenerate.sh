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

"$edgernn" export "$f32_model" --vectors "$data" --rust firmware-examples/cortex-m4f-anomaly/src/model.rs
"$edgernn" export "$int8_model" --vectors "$data" --rust firmware-examples/cortex-m4f-anomaly/src/model_int8.rs
"$edgernn" export "$int8_model" --vectors "$data" --rust firmware-examples/cortex-m0-int8/src/model.rs
"$edgernn" export "$int8_model" --vectors "$data" --rust firmware-examples/esp32c3/src/model.rs
"$edgernn" export "$int8_model" --vectors "$data" --c firmware-examples/c/lstm_classifier_int8.h
