#!/usr/bin/env python3
"""Many streams on one core: ONNX Runtime vs `edgernn bench --streams N`, side by side.

ONNX Runtime runs the peer script's LSTM (../shared/peers/bench_peers.py, seed-0 weights, I=8) on a
batch of N streams, one time step per call, the state (h, c) passed in and out through
IOBinding with ping-pong buffers (its lowest-overhead call path), single thread
(intra_op_num_threads=1, inter_op_num_threads=1, no spinning). edgernn runs the same weights,
imported from the peer script's ONNX graph, through `edgernn bench MODEL --streams N --json`
(one `Model::step_batch` call per sample). Both are pinned to the same CPU and interleaved:
each pass times ORT then edgernn; the best pass per runtime is kept. The first lines check that
ORT's batched step and edgernn's agree on the same inputs (`edgernn run --stream`).

Figures: stream-steps per second (N / seconds per call) and ns per stream-step. ORT's figure
includes one Python -> native call per N stream-steps (about 2 us, spread over N).

Usage: ort_streams.py EDGERNN_BINARY WORK_DIR [--streams 1000] [--hidden 32] [--passes 3]
       [--seconds 2]
bench_peers.py must sit next to this file or in ../shared/peers (the README copies it).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for d in (HERE, os.path.join(HERE, "../../../shared/peers")):
    if os.path.exists(os.path.join(d, "bench_peers.py")):
        sys.path.insert(0, d)
        break
import bench_peers as bp  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

I = 8


def build_batch_step(H, N, ws, path):
    """LSTM, one time step: X [1, N, I], h0/c0 [1, N, H] -> Y_h, Y_c [1, N, H]."""
    W, R, B = bp.onnx_weights("LSTM", H, ws)
    ins = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, N, I]),
           helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, N, H]),
           helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, N, H])]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, N, H]) for n in ("Y_h", "Y_c")]
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["", "Y_h", "Y_c"],
                            hidden_size=H)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
             numpy_helper.from_array(B, "B")]
    g = helper.make_graph([node], f"LSTM_H{H}_N{N}", ins, outs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", bp.OPSET)], producer_name="ort_streams.py")
    m.ir_version = bp.IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


class OrtBatchStep:
    """IOBinding: X written in place, two ping-pong (h, c) buffer sets, two prebuilt bindings."""

    def __init__(self, path, N, H):
        self.sess = bp.ort_session(path)
        self.x = np.zeros((1, N, I), np.float32)
        self.bufs = [[np.zeros((1, N, H), np.float32) for _ in range(2)] for _ in range(2)]
        xo = ort.OrtValue.ortvalue_from_numpy(self.x)
        ov = [[ort.OrtValue.ortvalue_from_numpy(b) for b in bs] for bs in self.bufs]
        self.bind = []
        for src in (0, 1):
            io = self.sess.io_binding()
            io.bind_ortvalue_input("X", xo)
            for n, v in zip(["h0", "c0"], ov[src]):
                io.bind_ortvalue_input(n, v)
            for n, v in zip(["Y_h", "Y_c"], ov[1 - src]):
                io.bind_ortvalue_output(n, v)
            self.bind.append(io)
        self.cur = 0

    def step(self):
        self.sess.run_with_iobinding(self.bind[self.cur])
        self.cur ^= 1
        return self.bufs[self.cur]


def time_ort(step, seconds):
    """Median seconds per call over calls made for `seconds` (after a warm-up)."""
    for _ in range(20):
        step.step()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 11:
        t = time.perf_counter_ns()
        step.step()
        times.append(time.perf_counter_ns() - t)
    times.sort()
    return times[len(times) // 2] * 1e-9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("edgernn")
    ap.add_argument("work")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    N, H = a.streams, a.hidden
    os.makedirs(a.work, exist_ok=True)
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})  # inherited by the edgernn child processes

    ws = bp.keras_weights("LSTM", H, I, 0)
    batch_onnx = os.path.join(a.work, f"lstm_h{H}_n{N}.onnx")
    pulse_onnx = os.path.join(a.work, f"lstm_h{H}.onnx")
    ern = os.path.join(a.work, f"lstm_h{H}.ern")
    build_batch_step(H, N, ws, batch_onnx)
    bp.build_onnx_pulse("LSTM", H, I, ws, pulse_onnx)
    subprocess.run([a.edgernn, "import", pulse_onnx, "-o", ern], check=True, capture_output=True)

    # Same numbers in: 3 steps of N streams through ORT, and stream 0..3 through edgernn.
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((3, N, I)).astype(np.float32)
    step = OrtBatchStep(batch_onnx, N, H)
    for t in range(3):
        step.x[...] = xs[t]
        h, _ = step.step()
    worst = 0.0
    for s in range(4):
        npy = os.path.join(a.work, "check_in.npy")
        np.save(npy, xs[:, s, :])
        out = os.path.join(a.work, "check_out.npy")
        subprocess.run([a.edgernn, "run", ern, "--input", npy, "--output", out, "--stream"],
                       check=True, capture_output=True)
        got = np.load(out).reshape(-1)[-H:]
        worst = max(worst, float(np.max(np.abs(got - h[0, s]))))
    print(f"ORT batch step vs edgernn, streams 0..3 after 3 steps: max |diff| {worst:.2e}")
    step = OrtBatchStep(batch_onnx, N, H)
    step.x[...] = rng.uniform(-1, 1, (1, N, I)).astype(np.float32)

    best = {}
    for p in range(a.passes):
        o = time_ort(step, a.seconds)
        e = json.loads(subprocess.run(
            [a.edgernn, "bench", ern, "--streams", str(N), "--steps", "10", "--seconds", str(a.seconds),
             "--json"], check=True, capture_output=True, text=True).stdout)
        per = {"ort": o / N * 1e9, "edgernn": e["ns_per_step"]}
        for k, v in per.items():
            best[k] = min(best.get(k, v), v)
        print(f"pass {p + 1}: ORT {per['ort']:.1f} ns/stream-step, edgernn {per['edgernn']:.1f} "
              f"(kernel {e['kernel']})", flush=True)
    macs = bp.macs_per_step("LSTM", H, I)
    print(f"\nLSTM H={H} I={I}, N={N} streams, one step per call, single thread, pinned CPU {cpu}, "
          f"best of {a.passes} passes, load avg {os.getloadavg()}")
    print("| runtime | ns per stream-step | stream-steps/s | GFLOP/s |")
    print("|---|---:|---:|---:|")
    for k, name in (("ort", f"ONNX Runtime {ort.__version__}"), ("edgernn", "edgernn step_batch")):
        v = best[k]
        print(f"| {name} | {v:,.1f} | {1e9 / v:,.0f} | {2 * macs / v:.1f} |")
    print(f"\nedgernn / ORT throughput: {best['ort'] / best['edgernn']:.2f}x")


if __name__ == "__main__":
    main()
