#!/usr/bin/env bash
# Makes the blobs of the build-time plan fixtures (`tests/prebuilt.rs`): one per kind of plan
# value a generated `PLAN` can hold, imported from the shared golden models or taken from
# tests/vectors. Run once; the test regenerates the `.rs` files from these blobs.
# Usage: tests/prebuilt/make-blobs.sh [path/to/edgernn]
set -euo pipefail
cd "$(dirname "$0")/../.."
edgernn=${1:-target/debug/edgernn}
golden=../shared/golden
out=tests/prebuilt
# f32: Bidirectional concat, go_backwards, Embedding + softmax, RepeatVector,
# Normalization + reset-after GRU (recurrent bias), SimpleRNN.
for name in bilstm_concat_u8_f3_seq lstm_go_backwards_u8_f3_seq embedding_lstm_softmax4_v20 \
    seq2vec2seq_lstm_u16_rep5 normalization_gru_dense1_f3 simplernn_dropout_simplernn_sigmoid; do
    "$edgernn" import "$golden/$name.keras" -o "$out/$name.ern"
done
# Int8Weights (int8 matrices with f32 row scales).
"$edgernn" quantize "$out/simplernn_dropout_simplernn_sigmoid.ern" --mode int8-weights \
    --calibration "$golden/simplernn_dropout_simplernn_sigmoid.input.npy" \
    -o "$out/simplernn_int8_weights.ern" >/dev/null
# Integer: Bidirectional sum (merge requantizer), int16 reset-before GRU, packed weights.
cp tests/vectors/bigru_sum_u8_f3_seq.int8.ern "$out/bigru_sum_int8.ern"
cp tests/vectors/gru_reset_before_u8_f3_seq.int16.ern "$out/gru_reset_before_int16.ern"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$edgernn" import "$golden/lstm_dense_softmax3_u16_f3.keras" -o "$tmp/lstm.ern"
"$edgernn" quantize "$tmp/lstm.ern" --mode int8 --pack interleaved4 \
    --calibration "$golden/lstm_dense_softmax3_u16_f3.input.npy" \
    -o "$out/lstm_softmax_int8_packed.ern" >/dev/null
