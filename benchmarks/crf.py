"""Dense CRF speed: kerasseg's permutohedral op vs pydensecrf2, same run.

Times the whole post-processing of one image (lattice construction and
mean-field inference, 21 classes, pydensecrf's default kernels) at 256^2,
512^2 and 1024^2 with 5 and 10 iterations. pydensecrf2 is single-threaded;
kerasseg runs with 1 and then 2 TensorFlow intra-op threads, each in a fresh
subprocess because the thread count is fixed when TensorFlow starts; each
subprocess alternates pydensecrf2 and kerasseg runs so both see the same
machine load. Prints milliseconds (best of `--repeats`) and the ratio
pydensecrf2 / kerasseg (> 1: kerasseg is faster).

Usage:
    python benchmarks/crf.py [--sizes 256 512 1024] [--repeats 3] [--cpu-time]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

NUM_CLASSES = 21
ITERATIONS = (5, 10)


def synthetic(size, seed=0):
    """A blocky image with noisy, mostly wrong class probabilities."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    labels = (x * 7 // size + 3 * (y * 3 // size)) % NUM_CLASSES
    palette = rng.uniform(0, 255, (NUM_CLASSES, 3))
    image = np.clip(palette[labels] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    logits = 2.0 * np.eye(NUM_CLASSES)[labels] + rng.normal(0, 1.5, (size, size, NUM_CLASSES))
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    return image, (probabilities / probabilities.sum(-1, keepdims=True)).astype(np.float32)


def pydensecrf_runner(image, probabilities, iterations):
    import pydensecrf.densecrf as dcrf

    size = image.shape[0]
    unary = np.ascontiguousarray(-np.log(np.clip(probabilities, 1e-5, 1.0))
                                 .reshape(-1, NUM_CLASSES).T)

    def run():
        crf = dcrf.DenseCRF2D(size, size, NUM_CLASSES)
        crf.setUnaryEnergy(unary)
        crf.addPairwiseGaussian(sxy=3, compat=3)
        crf.addPairwiseBilateral(sxy=80, srgb=13, rgbim=image, compat=10)
        return np.array(crf.inference(iterations))
    return run


def kerasseg_runner(image, probabilities, iterations):
    import tensorflow as tf

    from kerasseg.crf import refine

    image, probabilities = tf.constant(image), tf.constant(probabilities)
    return lambda: refine(image, probabilities, num_iterations=iterations).numpy()


def worker(sizes, repeats, threads, clock):
    """Times both libraries, alternating runs so that they see the same load."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from kerasseg.ops import custom_ops_available

    if not custom_ops_available():
        raise SystemExit("the kerasseg C++ op is unavailable: nothing to benchmark")
    results = {}
    for size in sizes:
        image, probabilities = synthetic(size)
        for iterations in ITERATIONS:
            runners = [pydensecrf_runner(image, probabilities, iterations),
                       kerasseg_runner(image, probabilities, iterations)]
            times = [[], []]
            for runner in runners:
                runner()  # warm-up (and, for kerasseg, op loading)
            for _ in range(repeats):
                for runner, measured in zip(runners, times, strict=True):
                    start = clock()
                    runner()
                    measured.append(1000 * (clock() - start))
            results[f"{size},{iterations}"] = [min(t) for t in times]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time CPU seconds of the process instead of wall-clock: robust "
                             "to a loaded machine, meaningful for the 1-thread columns only")
    parser.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_threads:
        clock = time.process_time if args.cpu_time else time.perf_counter
        print(json.dumps(worker(args.sizes, args.repeats, args.worker_threads, clock)))
        return

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    load_before = os.getloadavg()[0]
    results = {}
    for threads in (1, 2):
        command = [sys.executable, __file__, "--worker-threads", str(threads), "--repeats",
                   str(args.repeats), "--sizes", *map(str, args.sizes),
                   *(["--cpu-time"] if args.cpu_time else [])]
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        results[threads] = json.loads(output.stdout.strip().splitlines()[-1])

    clock = "CPU time" if args.cpu_time else "wall-clock"
    print(f"Dense CRF, {NUM_CLASSES} classes, best of {args.repeats} ({clock} ms); pydensecrf2 is "
          "single-threaded and timed alternately with kerasseg in each run;\n"
          "ratio = pydensecrf2 / kerasseg (> 1: kerasseg faster); 1-minute load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after (on {os.cpu_count()} CPUs)")
    header = (f"{'size':>9} {'iters':>5} | {'pydensecrf2':>11} {'ours 1 thr':>10} {'ratio':>6} | "
              f"{'pydensecrf2':>11} {'ours 2 thr':>10} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for key in results[1]:
        size, iterations = key.split(",")
        (peer1, one), (peer2, two) = results[1][key], results[2][key]
        print(f"{size + '^2':>9} {iterations:>5} | {peer1:>11.1f} {one:>10.1f} "
              f"{peer1 / one:>6.2f} | {peer2:>11.1f} {two:>10.1f} {peer2 / two:>6.2f}")


if __name__ == "__main__":
    main()
