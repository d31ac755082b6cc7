"""How many BLAS threads the update's matrix products use (docs: bench/RESULTS.md, "Threading").

numddpg's kernels are serial Numba loops; the only parallel work is inside the BLAS gemm calls
that Numba's ``np.dot`` makes (SciPy's OpenBLAS).  On the 2-core reference machine two BLAS
threads pay off once the layers are wide and the batch large (a (256, 256) network at batch
>= 100: measured in bench/update_speed.py), and cost more in thread hand-offs than they save on
small products (a (64, 64) network at batch 64).  ``auto_blas_threads`` encodes that rule;
``NUMDDPG_BLAS_THREADS`` or an explicit ``blas_threads`` overrides it.
"""
import os

from threadpoolctl import threadpool_limits

ENV_VAR = "NUMDDPG_BLAS_THREADS"


def auto_blas_threads(hidden_sizes, batch_size):
    """1 for small networks or batches, else every core: products of at least ~100 x 128 x 128
    amortise the hand-off between threads."""
    override = os.environ.get(ENV_VAR)
    if override:
        return check_threads(override, ENV_VAR)
    big = min(hidden_sizes) >= 128 and batch_size >= 100
    return (os.cpu_count() or 1) if big else 1


def check_threads(n, name="blas_threads"):
    try:
        value = int(n)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return value


def limit_blas_threads(n):
    """Set every loaded BLAS library (numpy's and SciPy's OpenBLAS) to ``n`` threads; returns
    the threadpoolctl limiter, whose ``restore_original_limits()`` undoes it."""
    return threadpool_limits(limits=check_threads(n), user_api="blas")
