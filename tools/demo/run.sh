#!/usr/bin/env bash
# The main job: build the CLI, inspect the bundled model, and run it on the bundled data both
# as whole windows and one sample at a time, next to what Keras computed for the same input.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The demo needs no training, so candle (the `train` feature) is left out of this build.
cargo build --release --locked -p edgernn-tools --no-default-features --bin edgernn
edgernn=target/release/edgernn
demo=tools/demo

echo "== inspect"
"$edgernn" inspect "$demo/lstm_classifier.ern"

echo
echo "== run: whole windows (3 sequences of 15 steps x 3 features -> 3 class probabilities)"
"$edgernn" run "$demo/lstm_classifier.ern" --input "$demo/lstm_classifier.input.npy"

echo
echo "== run --stream: one sample at a time (same numbers, bit for bit)"
"$edgernn" run "$demo/lstm_classifier.ern" --input "$demo/lstm_classifier.input.npy" --stream

echo
echo "== check against what Keras 3 computed for the same input"
"$edgernn" run "$demo/lstm_classifier.ern" --input "$demo/lstm_classifier.input.npy" --stream \
    --output target/demo-output.npy --expect "$demo/lstm_classifier.keras-expected.npy"
