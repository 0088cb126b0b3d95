"""Writes the peer script's LSTM/GRU/RNN models (I=8, H=32..256, same seed-0 weights) as ONNX graphs
with one [time, 1, features] input, the form `edgernn import` takes. Usage: build_pulse.py OUT_DIR"""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_peers as bp
out = sys.argv[1]
for cell in ["LSTM", "GRU", "RNN"]:
    for H in [32, 64, 128, 256]:
        ws = bp.keras_weights(cell, H, 8, 0)
        bp.build_onnx_pulse(cell, H, 8, ws, f"{out}/{cell.lower()}_h{H}.onnx")
