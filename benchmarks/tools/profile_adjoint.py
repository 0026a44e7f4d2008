"""Where the adjoint gradient's time goes: a device trace of one forward run and one gradient, per kernel.

Runs ``bench_adjoint.py``'s problem (2LPT + S FastPM steps, float32, gradient of mean(dx^2) with respect
to the white noise, reverse-time adjoint) once under ``jax.profiler.trace`` and sums the device time of
every kernel by its HLO instruction. Each instruction is classed from the optimised HLO by what its
fused computation contains (scatter, gather, fft, reduce, elementwise, copy ...), so the table says how
much of a step is painting, read-out, FFTs and the rest. Prints the classes and the top kernels of the
forward run and the gradient; writes ``<out>/profile_adjoint_<device>_<N>_<UTC time>.json`` and the
gradient's optimised HLO beside it (to read a kernel's contents).

    python benchmarks/tools/profile_adjoint.py --N 512 --steps 10 --out DIR

On a GPU the tool turns XLA's command buffers off (``--xla_gpu_enable_command_buffer=`` added to
``XLA_FLAGS``, unless that flag is already set): with them (jax 0.11.2's default) the trace shows CUDA-graph
launches (``command_buffer_N``), not the HLO instructions, and 67 % of the 512^3 gradient went unmatched.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import glob
import os
import re
import sys
import tempfile
from pathlib import Path

if "xla_gpu_enable_command_buffer" not in os.environ.get("XLA_FLAGS", ""):  # before jax is imported
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_enable_command_buffer=").strip()

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax  # noqa: E402

from bench_adjoint import _mem, _time, problem  # noqa: E402
from jaxpm.io import device_info, save_json, versions  # noqa: E402

# ops that name a kernel's class, most telling first
_CLASSES = ("scatter", "gather", "fft", "custom-call", "reduce", "dynamic-update-slice", "dynamic-slice",
            "concatenate", "transpose", "copy")
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*.*?\s([a-z][a-z0-9\-]*)\((.*)$")
_COMP = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")


def hlo_classes(text: str) -> dict[str, str]:
    """Instruction name -> class, for every instruction of an optimised HLO module's text. A fusion's
    class is the most telling op among those of the computations it calls (recursively)."""
    ops: dict[str, set] = collections.defaultdict(set)  # computation -> opcodes in it
    calls: dict[str, set] = collections.defaultdict(set)  # computation -> computations it calls
    instr: dict[str, tuple[str, str, set]] = {}  # name -> (computation, opcode, called computations)
    comp = None
    for line in text.splitlines():
        m = _COMP.match(line)
        if m and "=" not in line.split("{")[0]:
            comp = m.group(1)
            continue
        m = _INSTR.match(line)
        if not m or comp is None:
            continue
        name, op, rest = m.groups()
        called = set(re.findall(r"(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-]+)", rest))
        called |= set(re.findall(r"calls=\{([^}]*)\}", rest) and
                      [c.strip().lstrip("%") for c in re.findall(r"calls=\{([^}]*)\}", rest)[0].split(",")] or [])
        ops[comp].add(op)
        calls[comp] |= called
        instr[name] = (comp, op, called)

    def all_ops(c, seen=None):
        seen = set() if seen is None else seen
        if c in seen:
            return set()
        seen.add(c)
        out = set(ops.get(c, ()))
        for d in calls.get(c, ()):
            out |= all_ops(d, seen)
        return out

    out = {}
    for name, (_, op, called) in instr.items():
        inner = {op}
        if op in ("fusion", "call", "custom-call"):
            for c in called:
                inner |= all_ops(c)
        out[name] = next((k for k in _CLASSES if k in inner), "elementwise" if op == "fusion" else op)
    return out


def device_kernels(trace_dir: str) -> list[tuple[str, float]]:
    """(HLO instruction or kernel name, duration in ms) of every kernel on the first accelerator plane
    of a ``jax.profiler.trace`` folder (CPU: the XLA thunks of the host plane)."""
    path = glob.glob(trace_dir + "/**/*.xplane.pb", recursive=True)[0]
    data = jax.profiler.ProfileData.from_file(path)
    planes = [p for p in data.planes if p.name.startswith("/device:")] or [p for p in data.planes if p.name == "/host:CPU"]
    out = []
    for plane in planes[:1]:
        for line in plane.lines:
            for ev in line.events:
                stats = dict(ev.stats)
                if "hlo_op" in stats:
                    out.append((str(stats["hlo_op"]), ev.duration_ns * 1e-6))
    return out


def profile(fn, arg, label):
    compiled = jax.jit(fn).lower(arg).compile()
    median, _ = _time(compiled, (arg,), 3)
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            jax.block_until_ready(compiled(arg))
        kernels = device_kernels(tmp)
    classes = hlo_classes(compiled.as_text())
    by_name = collections.defaultdict(lambda: [0.0, 0])
    by_class = collections.defaultdict(float)
    for name, ms in kernels:
        by_name[name][0] += ms
        by_name[name][1] += 1
        by_class[classes.get(name, "unmatched")] += ms
    total = sum(ms for _, ms in kernels)
    print(f"\n{label}: wall {median * 1e3:.1f} ms (median of 3), kernels {total:.1f} ms, "
          f"compiled {(_mem(compiled) or 0) / 2**30:.2f} GiB", flush=True)
    for c, ms in sorted(by_class.items(), key=lambda kv: -kv[1]):
        print(f"  {c:>22} {ms:9.1f} ms {100 * ms / total:5.1f} %")
    top = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:25]
    for name, (ms, n) in top:
        print(f"    {name[:60]:>60} {classes.get(name, '?'):>14} {ms:8.1f} ms  x{n}")
    return compiled, {"wall_ms": median * 1e3, "kernel_ms": total, "compiled_bytes": _mem(compiled),
                      "by_class_ms": dict(by_class),
                      "kernels": [{"hlo_op": k, "class": classes.get(k, "?"), "ms": v[0], "count": v[1]}
                                  for k, v in sorted(by_name.items(), key=lambda kv: -kv[1][0])]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--mode", default="adjoint")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args(argv)
    forward, loss, noise = problem(a.N, a.steps, a.mode)
    dev = device_info()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M")
    base = Path(a.out) / f"profile_adjoint_{dev['kind'].replace(' ', '-').lower()}_{a.N}_{stamp}"
    Path(a.out).mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "per-kernel device time (benchmarks/tools/profile_adjoint.py)", "N": a.N, "steps": a.steps,
              "autodiff": a.mode, "device": dev, "versions": versions(), "command": " ".join(sys.argv)}
    _, result["forward"] = profile(forward, noise, "forward")
    compiled, result["grad"] = profile(jax.grad(loss), noise, "gradient")
    result["time_ratio"] = result["grad"]["wall_ms"] / result["forward"]["wall_ms"]
    save_json(base.with_suffix(".json"), result)
    Path(str(base) + "_grad_hlo.txt").write_text(compiled.as_text())
    print(f"time ratio {result['time_ratio']:.2f}; wrote {base}.json and its HLO")


if __name__ == "__main__":
    main()
