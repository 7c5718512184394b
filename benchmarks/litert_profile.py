"""Op-by-op LiteRT latency of a `.tflite` file.

The LiteRT Python package has no per-op profiler, so this script cuts the
graph into one-op models (each keeps its operator, its constant inputs and the
quantisation of every tensor; the other inputs become model inputs filled with
random values) and times each one with the same interpreter and delegates
(XNNPACK) as the whole file, at the given thread count (the fastest of
`--runs` invokes after a warm-up; one thread is timed in thread CPU time,
see `cpu_clock`). It prints the whole file's latency, the sum
over ops (the difference is what XNNPACK gains by planning the graph as one),
a table per op type and the `--top` slowest ops.

It first prints the CPU and the instruction sets XNNPACK picks its kernels
by (AVX2 only, AVX-512, VNNI); --builtin-kernels times LiteRT's own
kernels without the XNNPACK delegate, for comparison.

    python benchmarks/litert_profile.py model.tflite --threads 1 --top 15
    python benchmarks/litert_profile.py fp32.tflite int8.tflite --builtin-kernels
"""

import argparse
import collections
import time

import numpy as np


def cpu_clock(threads):
    """The clock to time `threads` LiteRT threads with on a shared machine.

    With one thread LiteRT runs every kernel in the calling thread, so that
    thread's CPU time is the latency without the time other processes held
    the core (on a loaded 2-core machine wall-clock minima still varied by
    2x between runs; thread CPU time by a few %). Several threads need the
    wall clock.
    """
    return time.thread_time if threads == 1 else time.perf_counter


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _is_constant(model, tensor):
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def _one_op_model(model, index):
    """A ModelT holding only operator `index` of subgraph 0 (and what it reads)."""
    schema = _schema()
    graph = model.subgraphs[0]
    op = graph.operators[index]
    used = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
    remap = {t: i for i, t in enumerate(dict.fromkeys(used))}
    buffers = [schema.BufferT()]
    tensors = []
    for old in remap:
        tensor = graph.tensors[old]
        if _is_constant(model, tensor):
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    new_op = schema.OperatorT()
    for field, value in vars(op).items():
        setattr(new_op, field, value)
    new_op.inputs = [remap.get(t, -1) for t in op.inputs]
    new_op.outputs = [remap[t] for t in op.outputs]
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, [new_op]
    subgraph.inputs = [remap[t] for t in dict.fromkeys(op.inputs)
                       if t >= 0 and not tensors[remap[t]].buffer]
    subgraph.outputs = list(new_op.outputs)
    single = schema.ModelT()
    single.version, single.operatorCodes = model.version, model.operatorCodes
    single.subgraphs, single.buffers, single.description = [subgraph], buffers, b"op"
    return single


def _pack(model):
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _random_feed(details, rng):
    feed = {}
    for detail in details:
        dtype, shape = np.dtype(detail["dtype"]), detail["shape"]
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            low, high = max(info.min, -128), min(info.max, 255)
            feed[detail["index"]] = rng.integers(low, high, shape).astype(dtype)
        else:
            feed[detail["index"]] = rng.standard_normal(shape).astype(dtype)
    return feed


def set_random_inputs(interpreter, seed=0):
    """Fills every input of an allocated interpreter with random values of its dtype."""
    feed = _random_feed(interpreter.get_input_details(), np.random.default_rng(seed))
    for index, value in feed.items():
        interpreter.set_tensor(index, value)


def time_interpreters(interpreters, threads, rounds, invocations=1, statistic=min):
    """{key: ms per invoke} of `interpreters` ({key: allocated interpreter with
    its inputs set}, each running `threads` threads).

    After a warm-up invoke each (allocations, XNNPACK weight packing), every
    round times `invocations` invokes of every interpreter in turn, so that
    load from other processes hits them all alike; `statistic` (min, or
    `statistics.median`) summarises each one's rounds. The clock is
    `cpu_clock(threads)`. Every benchmark that times `.tflite` files uses this.
    """
    for interpreter in interpreters.values():
        interpreter.invoke()
    clock = cpu_clock(threads)
    times = {key: [] for key in interpreters}
    for _ in range(rounds):
        for key, interpreter in interpreters.items():
            start = clock()
            for _ in range(invocations):
                interpreter.invoke()
            times[key].append(1e3 * (clock() - start) / invocations)
    return {key: statistic(values) for key, values in times.items()}


def time_model(content, threads=1, runs=20, resolver=None):
    """Fastest invoke time in ms of a `.tflite` flatbuffer on random inputs
    (`resolver`: an `OpResolverType`, None for LiteRT's default, XNNPACK)."""
    from ai_edge_litert.interpreter import Interpreter

    options = {} if resolver is None else {"experimental_op_resolver_type": resolver}
    interpreter = Interpreter(model_content=content, num_threads=threads, **options)
    interpreter.allocate_tensors()
    set_random_inputs(interpreter)
    return time_interpreters({"model": interpreter}, threads, runs)["model"]


def profile(content, threads=1, runs=20, resolver=None):
    """[(op index, op type, output shape, output dtype, ms)] for every op of subgraph 0."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    names = {getattr(schema.BuiltinOperator, n): n for n in dir(schema.BuiltinOperator)
             if not n.startswith("_")}
    rows = []
    for index, op in enumerate(model.subgraphs[0].operators):
        code = model.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        fresh = schema.ModelT.InitFromPackedBuf(content, 0)  # _one_op_model edits tensors
        output = fresh.subgraphs[0].tensors[op.outputs[0]]
        dtype = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        ms = time_model(_pack(_one_op_model(fresh, index)), threads, runs, resolver)
        rows.append((index, kind, [int(s) for s in output.shape], dtype[output.type], ms))
    return rows


def summary(rows):
    """{op type: (count, total ms)}, slowest first."""
    totals = collections.defaultdict(lambda: [0, 0.0])
    for _, kind, _, _, ms in rows:
        totals[kind][0] += 1
        totals[kind][1] += ms
    return dict(sorted(totals.items(), key=lambda item: -item[1][1]))


def report(path, threads=1, runs=20, top=15, resolver=None):
    with open(path, "rb") as f:
        content = f.read()
    whole = time_model(content, threads, runs, resolver)
    rows = profile(content, threads, runs, resolver)
    total = sum(row[-1] for row in rows)
    print(f"{path}: whole file {whole:.2f} ms, sum over {len(rows)} one-op models "
          f"{total:.2f} ms ({threads} thread(s), min of {runs})")
    print(f"{'op type':<22}{'count':>6}{'ms':>9}{'share':>7}")
    for kind, (count, ms) in summary(rows).items():
        print(f"{kind:<22}{count:>6}{ms:>9.2f}{100 * ms / total:>6.1f}%")
    print(f"slowest {top}:")
    for index, kind, shape, dtype, ms in sorted(rows, key=lambda r: -r[-1])[:top]:
        print(f"  #{index:<4}{kind:<22}{str(shape):<22}{dtype:<8}{ms:>8.3f} ms")
    return whole, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--builtin-kernels", action="store_true",
                        help="LiteRT's builtin kernels without the XNNPACK delegate")
    args = parser.parse_args(argv)
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kerasseg.export.common import cpu_description

    cpu = cpu_description()
    print(f"CPU: {cpu['cpu']}; ISA: {' '.join(cpu['isa'])}; kernels: "
          f"{'builtin (no XNNPACK)' if args.builtin_kernels else 'XNNPACK delegate'}")
    resolver = None
    if args.builtin_kernels:
        from ai_edge_litert.interpreter import OpResolverType

        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    for path in args.models:
        report(path, args.threads, args.runs, args.top, resolver)


if __name__ == "__main__":
    main()
