#!/usr/bin/python3
"""PyTorch eager on an ONNX model: the same measurements as dermal_bench_engine, one JSON object.

    /usr/bin/python3 bench/torch_eager.py --model M --threads T --iters N [--warmup W] [--load-only]

The model runs through tools/reference/onnx_torch.py (one torch.nn.functional call per ONNX node)
in float32. Measured in this fresh process:
  import_ms   importing torch, onnx and the interpreter (not part of load_ms)
  load_ms     onnx.load + building the torch weight tensors (onnx_torch.Interpreter)
  forward_ms  median of one image's forward under torch.no_grad()
  fwd_bwd_ms  median of forward + autograd.grad of the top-class logit with respect to the
              GlobalAveragePool input (the interpreter makes that tensor an autograd leaf, so
              backward stops there, as the engine's does)
  peak_rss_bytes  resource.getrusage ru_maxrss at the end
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

_start_import = time.perf_counter()
import onnx  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "reference"))
import onnx_torch  # noqa: E402

_import_ms = (time.perf_counter() - _start_import) * 1e3


def ms_since(start):
    return (time.perf_counter() - start) * 1e3


def time_runs(body, iters, warmup):
    """Wall and process-CPU milliseconds of each timed run (CPU time is what a busy machine
    does not inflate, with one thread)."""
    for _ in range(warmup):
        body()
    wall, cpu = [], []
    for _ in range(iters):
        c = time.process_time()
        start = time.perf_counter()
        body()
        wall.append(ms_since(start))
        cpu.append((time.process_time() - c) * 1e3)
    return wall, cpu


def cam_tensor(model):
    """The Grad-CAM target: the tensor the GlobalAveragePool reads."""
    for node in model.graph.node:
        if node.op_type == "GlobalAveragePool":
            return node.input[0]
    raise SystemExit("the model has no GlobalAveragePool: no Grad-CAM layer to differentiate to")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--load-only", action="store_true", help="stop after the load (bench/engine.py repeats it)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    load_cpu = time.process_time()
    start = time.perf_counter()
    model = onnx.load(a.model)
    net = onnx_torch.Interpreter(model, dtype=torch.float32)
    load_ms = ms_since(start)
    load_cpu_ms = (time.process_time() - load_cpu) * 1e3
    if a.load_only:
        print(json.dumps({"model": a.model, "threads": a.threads, "load_ms": load_ms, "load_cpu_ms": load_cpu_ms}))
        return

    cam = cam_tensor(model)
    logits = net.output_names[0]
    inits = {t.name for t in model.graph.initializer}
    shapes = {}
    for v in model.graph.input:
        if v.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
                for d in v.type.tensor_type.shape.dim]
        shapes[v.name] = dims  # dynamic dims (the batch) become 1
    gen = torch.Generator().manual_seed(7)
    inputs = {name: torch.rand(s, generator=gen) * 4 - 2 for name, s in shapes.items()}

    def forward():
        with torch.no_grad():
            net.run(inputs)

    top = [0]

    def forward_backward():
        out = net.run(inputs, keep=[cam])
        y = out[logits]
        top[0] = int(y[0].argmax())
        torch.autograd.grad(y[0, top[0]], [out[cam]])

    fwd = time_runs(forward, a.iters, a.warmup)
    fwd_bwd = time_runs(forward_backward, a.iters, a.warmup)
    weight_bytes = sum(t.numel() * t.element_size() for t in net.initializers.values())
    print(json.dumps({
        "model": a.model,
        "threads": a.threads,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "iters": a.iters,
        "warmup": a.warmup,
        "import_ms": _import_ms,
        "load_ms": load_ms,
        "load_cpu_ms": load_cpu_ms,
        "forward_ms": statistics.median(fwd[0]),
        "forward_min_ms": min(fwd[0]),
        "forward_cpu_ms": statistics.median(fwd[1]),
        "fwd_bwd_ms": statistics.median(fwd_bwd[0]),
        "fwd_bwd_min_ms": min(fwd_bwd[0]),
        "fwd_bwd_cpu_ms": statistics.median(fwd_bwd[1]),
        "top_class": top[0],
        "cam_tensor": cam,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "weight_bytes": weight_bytes,
    }))


if __name__ == "__main__":
    main()
