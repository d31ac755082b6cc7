"""numddpg.kernels.gemm: register-tiled products held equal to numpy's, row by row independent of the
tiling, and falling back to BLAS where tiles do not fit.

Tolerances: float64 1e-12 relative to sum_k |a_ik b_kj| (each output is one sum of K products
in a fixed order, ~K eps_mach of that scale at worst; K <= 80 here); float32 the same bound at
float32's eps_mach, 2e-6 x K / 16 rounded up to 1e-5.  A misplaced row, column, stride or edge
tile gives an O(1) error.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from numddpg.kernels.gemm import HAS_AVX2_FMA, VECTOR_BYTES, _tiles, matmul, tiles_fit, use_tiles

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@njit(cache=True)
def tiled(a, b, out):
    _tiles(a, b, out)


@njit(cache=True)
def product(a, b, out):
    matmul(a, b, out)


@njit(cache=True)
def fits(a, b, out):
    return tiles_fit(a, b, out)


def operands(rng, M, K, N, dtype, transposed):
    """a (M, K) -- a transposed view of a (K, M) array when ``transposed`` -- and b (K, N)."""
    a = rng.standard_normal((K, M) if transposed else (M, K)).astype(dtype)
    return (a.T if transposed else a), rng.standard_normal((K, N)).astype(dtype)


def assert_product(out, a, b, dtype):
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + 1e-30
    assert np.all(np.abs(out - exact) <= TOL[dtype] * scale)


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 30), K=st.integers(0, 80), n_vectors=st.integers(1, 8),
       dtype=st.sampled_from([np.float32, np.float64]), transposed=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_tiles_equal_numpy_product(M, K, n_vectors, dtype, transposed, seed):
    """Every edge: 1-3 leftover rows, one- and three-vector column panels, K = 0 (all zeros),
    a transposed A (h^T in dW = h^T @ delta); the output is filled with NaN first, so an
    element no tile writes shows."""
    N = n_vectors * VECTOR_BYTES // np.dtype(dtype).itemsize
    a, b = operands(np.random.default_rng(seed), M, K, N, dtype, transposed)
    a_before, b_before = a.copy(), b.copy()
    out = np.full((M, N), np.nan, dtype)
    tiled(a, b, out)
    assert_product(out, a, b, dtype)
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_row_is_the_same_sum_wherever_its_tile_lies(dtype):
    """C[i, j] is one sum over k in order k = 0..K-1, in whichever tile (4 rows, or an edge
    tile of 1-3) row i falls: a product of rows 3.. of A equals rows 3.. of the whole product
    bit for bit.  (Row chunks rely on this no more than on BLAS, but a run's numbers must not
    depend on how a batch is tiled.)"""
    a, b = operands(np.random.default_rng(0), 23, 40, 5 * VECTOR_BYTES // np.dtype(dtype).itemsize,
                    dtype, False)
    whole = np.empty((23, b.shape[1]), dtype)
    part = np.empty((20, b.shape[1]), dtype)
    tiled(a, b, whole)
    tiled(np.ascontiguousarray(a[3:]), b, part)
    assert np.array_equal(whole[3:], part)


@pytest.mark.parametrize("M,K,N,transposed,tiles", [
    (64, 64, 64, False, True),       # Pendulum's hidden layer: tiles
    (4, 64, 64, True, True),         # dW of its first layer
    (256, 17, 256, False, True),     # HalfCheetah's first layer at batch 256
    (256, 256, 256, False, False),   # a 256 x 256 A: BLAS (use_tiles)
    (256, 64, 256, True, False),     # a transposed A of 256 rows: BLAS
    (64, 64, 1, False, False),       # one output column: not a whole vector, BLAS
    (64, 64, 12, False, False),      # 12 columns: not a multiple of 8 float32, BLAS
])                                   # (and BLAS for all on a CPU without AVX2 and FMA)
def test_matmul_chooses_and_agrees(M, K, N, transposed, tiles):
    a, b = operands(np.random.default_rng(1), M, K, N, np.float32, transposed)
    out = np.full((M, N), np.nan, np.float32)
    assert (fits(a, b, out) and use_tiles(M, K, 4, transposed)) == (tiles and HAS_AVX2_FMA)
    product(a, b, out)
    assert_product(out, a, b, np.float32)


def test_tiles_do_not_fit_mismatched_or_strided_operands():
    a = np.ones((8, 4), np.float32)
    assert not fits(a, np.ones((5, 8), np.float32), np.ones((8, 8), np.float32))   # K != K
    assert not fits(a, np.ones((4, 8), np.float32), np.ones((7, 8), np.float32))   # M != M
    assert not fits(a, np.ones((4, 16), np.float32)[:, ::2], np.ones((8, 8), np.float32))
    assert not fits(a, np.ones((4, 8), np.float32), np.ones((8, 16), np.float32)[:, ::2])
    assert fits(a, np.ones((4, 8), np.float32), np.ones((8, 8), np.float32))
