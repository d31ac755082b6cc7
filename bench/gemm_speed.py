"""Register tiles (numddpg.kernels.gemm) against BLAS, product by product, on one thread.

    python bench/gemm_speed.py [--rounds 7] [--dtype float32]

For the products of the update's configs (bench/update_speed.py's CONFIGS, at their batch and at
half of it, the rows of one of two chunks), in the two forms the kernels tile:

    h @ W        a forward layer:        (rows x n_in) @ (n_in x n_out)
    h^T @ delta  a layer's weight grad:  (n_in x rows) @ (rows x n_out), h^T a transposed view

one process alternates the contenders round by round, each round timing a loop of calls worth
~20 ms: ``tiles`` (numddpg.kernels.gemm._tiles: register tiles for every shape, whatever use_tiles
says), ``blas`` (np.dot in a jitted loop: the scipy OpenBLAS sgemm/dgemm that Numba calls), held
to one BLAS thread.  Printed: median microseconds per product, GFLOP/s, the ratio blas / tiles
(above 1: tiles faster) and whether ``matmul`` picks tiles for that shape (``use_tiles``).  The
CPU heads the output.  Products with a column count that is not a multiple of 8 (float32) are
not listed: tiles do not take them.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from numba import njit

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BENCH, ".."))
sys.path.insert(0, BENCH)
from numddpg.kernels.gemm import HAS_AVX2_FMA, VECTOR_BYTES, _tiles, use_tiles  # noqa: E402
from numddpg.kernels.threads import describe_cpu, limit_blas_threads  # noqa: E402
from update_speed import CONFIGS, update_gemms  # noqa: E402


@njit(nogil=True)
def _blas_loop(a, b, out, reps):
    for _ in range(reps):
        np.dot(a, b, out)


@njit(nogil=True)
def _tiles_loop(a, b, out, reps):
    for _ in range(reps):
        _tiles(a, b, out)


def shapes(dtype):
    """{(M, K, N, transposed)} of every tileable product of the configs' updates
    (update_speed.update_gemms), at the batch and at half of it: the forward products and
    weight gradients whose column count is a whole number of vectors (dh = delta @ W^T stays
    with BLAS)."""
    width = VECTOR_BYTES // np.dtype(dtype).itemsize
    out = set()
    for obs, act, hidden, batch in CONFIGS:
        for rows in {batch, (batch + 1) // 2}:
            out.update((m, k, n, ta) for m, k, n, ta, tb in update_gemms(obs, act, hidden, rows)
                       if not tb and n % width == 0)
    return sorted(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = ap.parse_args(argv)
    dtype = np.dtype(args.dtype)
    limit_blas_threads(1)
    print(f"register tiles vs BLAS, {dtype.name}, one thread, medians of {args.rounds} "
          "alternating rounds")
    print(describe_cpu())
    if not HAS_AVX2_FMA:
        print("this CPU lacks AVX2 or FMA: matmul never picks tiles here")
    rng = np.random.default_rng(0)
    print(f"{'product (M x K x N)':28s} {'blas us':>9s} {'tiles us':>9s} {'blas GF/s':>9s} "
          f"{'tiles GF/s':>10s} {'blas/tiles':>10s}  matmul picks")
    for M, K, N, transposed in shapes(dtype):
        a = rng.standard_normal((K, M) if transposed else (M, K)).astype(dtype)
        a = a.T if transposed else a
        b = rng.standard_normal((K, N)).astype(dtype)
        out = np.empty((M, N), dtype)
        flop = 2.0 * M * N * K
        reps = max(5, int(0.02 * 40e9 / flop))         # ~20 ms a round at ~40 GFLOP/s
        loops = {"blas": _blas_loop, "tiles": _tiles_loop}
        for loop in loops.values():
            loop(a, b, out, 1)                           # compile, warm the caches
        times = {name: [] for name in loops}
        for r in range(args.rounds):
            for name in (("blas", "tiles") if r % 2 == 0 else ("tiles", "blas")):
                t0 = time.perf_counter()
                loops[name](a, b, out, reps)
                times[name].append((time.perf_counter() - t0) / reps)
        tb, tt = (statistics.median(times[k]) for k in ("blas", "tiles"))
        label = f"{'h^T' if transposed else 'h'} {M} x {K} x {N}"
        pick = "tiles" if use_tiles(M, K, dtype.itemsize, transposed) else "blas"
        print(f"{label:28s} {tb * 1e6:9.1f} {tt * 1e6:9.1f} {flop / tb / 1e9:9.1f} "
              f"{flop / tt / 1e9:10.1f} {tb / tt:10.2f}  {pick}")


if __name__ == "__main__":
    main()
