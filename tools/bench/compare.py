#!/usr/bin/env python3
"""edgernn vs ONNX Runtime, side by side in one run (see README "Performance").

For each (cell, H): ONNX Runtime through ../shared/peers/bench_peers.py's own bench_config
(single thread, IOBinding and plain run, stream and seq, T=100), then `edgernn bench` on the same
weights imported from the peer script's ONNX graph, seq mode (and stream for LSTM H=64), both
pinned to the same CPU. The sweep runs --passes times; per number the best pass is kept (as the
peer script does). int8 rows: `edgernn quantize --mode int8` of the same model, timed next to f32.
Usage: compare.py EDGERNN_BINARY MODEL_DIR [--passes 2]
"""
import json, os, subprocess, sys
# The peer script: ../shared/peers/bench_peers.py, copied next to this file (it writes its
# models next to itself).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_peers as bp  # noqa: E402

exe, models = sys.argv[1], sys.argv[2]
passes = int(sys.argv[4]) if len(sys.argv) > 4 else 2
cpu = sorted(os.sched_getaffinity(0))[-1]
os.sched_setaffinity(0, {cpu})

def ern(name, mode="seq", seconds=1.0):
    out = subprocess.run([exe, "bench", f"{models}/{name}.ern", "--mode", mode, "--seconds", str(seconds), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)

best = {}
def keep(key, v):
    if key not in best or v < best[key]:
        best[key] = v

for p in range(passes):
    fl = bp.bench_floor(8, ["ort"], 2000, 0.5)
    keep(("floor", "ort-iobind"), fl["ort-iobind"]["median_ns"])
    for cell in ["LSTM", "GRU", "RNN"]:
        for H in [32, 64, 128, 256]:
            r = bp.bench_config(cell, H, 8, 100, ["ort"], 2000, 1.0)
            name = f"{cell.lower()}_h{H}"
            for rt in ("ort-iobind", "ort-run"):
                keep((name, rt, "seq"), r["runtimes"][rt]["seq"]["ns_per_step"])
                keep((name, rt, "stream"), r["runtimes"][rt]["stream"]["ns_per_step"])
            e = ern(name)
            keep((name, "edgernn", "seq"), e["ns_per_step"])
            kernel = e["kernel"]
            if cell == "LSTM" and H == 64:
                keep((name, "edgernn", "stream"), ern(name, "stream")["ns_per_step"])
            if H >= 128:
                keep((name, "edgernn-int8", "seq"), ern(name + "_int8")["ns_per_step"])
                keep((name, "edgernn", "seq"), ern(name)["ns_per_step"])
            print(f"pass {p+1} {name}: ORT iobind seq {best[(name,'ort-iobind','seq')]:,.0f}  edgernn seq {best[(name,'edgernn','seq')]:,.0f}", flush=True)

print(f"\nkernel: {kernel}; pinned CPU {cpu}; passes {passes}; load avg {os.getloadavg()}")
print(f"ORT iobind call floor: {best[('floor','ort-iobind')]:,.0f} ns/call\n")
print("| cell | H | MACs/step | ORT ns/step | edgernn ns/step | edgernn / ORT | edgernn GFLOP/s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for cell in ["LSTM", "GRU", "RNN"]:
    for H in [32, 64, 128, 256]:
        n = f"{cell.lower()}_h{H}"
        o, e = best[(n, "ort-iobind", "seq")], best[(n, "edgernn", "seq")]
        macs = bp.macs_per_step(cell, H, 8)
        print(f"| {cell} | {H} | {macs:,} | {o:,.0f} | {e:,.0f} | {e/o:.2f} | {2*macs/e:.1f} |")
o, e, f = best[("lstm_h64", "ort-iobind", "stream")], best[("lstm_h64", "edgernn", "stream")], best[("floor", "ort-iobind")]
print(f"\nstream LSTM H=64: ORT iobind {o:,.0f} ns/step (minus floor {f:,.0f}: {o-f:,.0f}); edgernn {e:,.0f} ns/step; ratio vs ORT-floor {e/(o-f):.2f}")
print("\n| cell | H | f32 ns/step | int8 ns/step | int8 speed-up |")
print("|---|---:|---:|---:|---:|")
for cell in ["LSTM", "GRU", "RNN"]:
    for H in [128, 256]:
        n = f"{cell.lower()}_h{H}"
        a, b = best[(n, "edgernn", "seq")], best[(n, "edgernn-int8", "seq")]
        print(f"| {cell} | {H} | {a:,.0f} | {b:,.0f} | {a/b:.2f}x |")
