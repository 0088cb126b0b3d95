#!/usr/bin/env bash
# The main job, end to end: train an LSTM forecaster on the first 750 readings of a real
# machine-temperature sensor (NAB's probationary period), quantize it to int8, stream all
# 22,695 readings through the on-device anomaly detector one sample at a time, print what it
# flagged and when, and draw the plot. Then check the runtime against Keras on a bundled model.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release --locked -p edgernn-tools --bin edgernn
edgernn=target/release/edgernn
demo=tools/demo
out=target/demo
mkdir -p "$out"
series=$demo/data/machine_temperature_system_failure.csv

echo "== train on the first 750 readings only (no labels; the rest is never read)"
"$edgernn" train --data "$series" --features value --target value --timestamp timestamp \
    --rows 750 --window 24 --units 16 --epochs 40 --patience 8 --batch-size 32 \
    --learning-rate 3e-3 --detector --quantize int8 --quiet -o "$out/machine_temperature.ern"

echo
echo "== the int8 model and its detector, as the firmware would hold them"
"$edgernn" inspect "$out/machine_temperature.int8.ern"

echo
echo "== stream every reading through the detector (int8 model); labelled windows only mark the output"
"$edgernn" detect "$out/machine_temperature.int8.ern" --data "$series" \
    --labels "$demo/data/machine_temperature_windows.json" \
    -o "$out/machine_temperature.scores.csv" --plot "$out/machine_temperature.png"

echo
echo "== exactness: a bundled Keras 3 LSTM classifier, one sample at a time, against Keras' own output"
"$edgernn" run "$demo/lstm_classifier.ern" --input "$demo/lstm_classifier.input.npy" --stream \
    --output "$out/classifier-output.npy" --expect "$demo/lstm_classifier.keras-expected.npy"
