"""Matrix products by register tiles: C = A @ B without BLAS, for the shapes where BLAS loses.

An MLP's products at small batch and width spend much of their time outside the arithmetic:
OpenBLAS copies ("packs") both operands into its own layout on every call, which pays back on
large matrices and not on a 64 x 64 x 64 product, whose operands already fit in the L1 cache.
Here the operands are read where they lie.  C is cut into tiles of R rows x V vectors (a vector
is 32 bytes: 8 float32 or 4 float64, one AVX2 register); a tile's R*V sums stay in registers
for the whole loop over k:

    for k in 0..K-1:                          b_v = B[k, j0 + v W : j0 + (v + 1) W]  (V loads)
        for r in 0..R-1:                      a_r = A[i0 + r, k], broadcast        (R loads)
            acc[r, v] = fma(a_r, b_v, acc[r, v])                                   (R*V FMAs)
    C[i0:i0 + R, j0:j0 + V W] = acc

The main tile is R = 4 rows x V = 3 vectors: 12 independent sums hide the FMA unit's latency
(4-5 cycles on AMD Zen and Intel cores, two units) and 7 loads feed 12 FMAs.  Edge tiles of
fewer rows (the same code, storing only its rows) and of single vectors (V = 1) finish the
matrix; the column count must be a multiple of W (``tiles_fit``).  Each C[i, j] is one sum
over k in the order k = 0, 1, ..., so it does not depend on where its tile lies or on the
thread that computes it.

The tile loop is written in LLVM IR (``tile``, an ``intrinsic``): Numba has no vector type,
and LLVM does not register-block a plain triple loop by itself.  ``matmul`` uses tiles where
they were measured faster than BLAS (``use_tiles``) and calls np.dot otherwise;
bench/RESULTS.md, "Register tiles", has the measurements.
"""
import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

VECTOR_BYTES = 32        # one AVX2 register
# Tiles only where the vector FMA is one instruction: without AVX2 and FMA, LLVM would split
# each 8-lane FMA into calls to fmaf (right, but many times slower than BLAS).
HAS_AVX2_FMA = all(llvm.get_host_cpu_features().get(f, False) for f in ("avx2", "fma"))
ROWS = 4                 # R of the main tile
VECTORS = 3              # V of the main tile


def _tile_intrinsic(V):
    """The intrinsic tile_4xV(a, b, c, i0, rows, j0, K): c[i0:i0+rows, j0:j0+V*W] =
    a[i0:i0+rows, :K] @ b[:K, j0:j0+V*W] for 1 <= rows <= 4 (an edge tile of fewer than 4 rows
    repeats its last row in the registers left over and stores only its own).  a may have any
    strides (a transposed view too); b's and c's rows must be contiguous (unit stride along
    axis 1).  No bounds are checked: the caller's job."""
    R = ROWS

    @intrinsic
    def tile(typingctx, a, b, c, i0, rows, j0, K):
        sig = types.void(a, b, c, i0, rows, j0, K)

        def codegen(context, builder, sig, args):
            fty = context.get_value_type(sig.args[0].dtype)
            size = sig.args[0].dtype.bitwidth // 8
            W = VECTOR_BYTES // size
            vty = ir.VectorType(fty, W)
            intp = context.get_value_type(types.intp)
            A, B, C = (context.make_array(t)(context, builder, v)
                       for t, v in zip(sig.args[:3], args[:3]))
            i0v, rows, j0v, Kv = args[3:]
            sa_i, sa_k = cgutils.unpack_tuple(builder, A.strides, 2)      # strides in bytes
            sb_k = cgutils.unpack_tuple(builder, B.strides, 2)[0]
            sc_i = cgutils.unpack_tuple(builder, C.strides, 2)[0]

            def const(v):
                return ir.Constant(intp, v)

            def at(ptr, offset):                 # ptr + offset bytes
                return builder.gep(builder.bitcast(ptr, ir.IntType(8).as_pointer()), [offset])

            def load(ptr, ty):
                return builder.load(builder.bitcast(ptr, ty.as_pointer()), align=size)

            col0 = builder.mul(j0v, const(size))
            last = builder.sub(rows, const(1))         # row r of the tile: i0 + min(r, rows - 1)
            row = [builder.add(i0v, builder.select(builder.icmp_signed("<", const(r), rows),
                                                   const(r), last)) for r in range(R)]
            a_rows = [at(A.data, builder.mul(row[r], sa_i)) for r in range(R)]
            b_cols = at(B.data, col0)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty] * 3),
                f"llvm.fma.v{W}{'f32' if size == 4 else 'f64'}")
            zero = ir.Constant(vty, [0.0] * W)
            broadcast = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)

            entry = builder.basic_block
            loop = builder.append_basic_block("tile.k")
            done = builder.append_basic_block("tile.store")
            builder.cbranch(builder.icmp_signed(">", Kv, const(0)), loop, done)

            builder.position_at_end(loop)            # for k in 0..K-1:
            k = builder.phi(intp)
            acc = [builder.phi(vty) for _ in range(R * V)]
            b_row = at(b_cols, builder.mul(k, sb_k))
            b = [load(at(b_row, const(v * VECTOR_BYTES)), vty) for v in range(V)]
            a_col = builder.mul(k, sa_k)
            summed = []
            for r in range(R):
                a_rk = load(at(a_rows[r], a_col), fty)
                a_rk = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(vty, ir.Undefined), a_rk,
                                           ir.Constant(ir.IntType(32), 0)),
                    ir.Constant(vty, ir.Undefined), broadcast)
                summed += [builder.call(fma, [a_rk, b[v], acc[r * V + v]]) for v in range(V)]
            k_next = builder.add(k, const(1))
            k.add_incoming(const(0), entry)
            k.add_incoming(k_next, loop)
            for phi, new in zip(acc, summed):
                phi.add_incoming(zero, entry)
                phi.add_incoming(new, loop)
            builder.cbranch(builder.icmp_signed("<", k_next, Kv), loop, done)

            builder.position_at_end(done)            # C[i0:i0+R, j0:j0+V*W] = acc
            final = []
            for new in summed:
                phi = builder.phi(vty)
                phi.add_incoming(zero, entry)
                phi.add_incoming(new, loop)
                final.append(phi)
            for r in range(R):
                with builder.if_then(builder.icmp_signed("<", const(r), rows)):
                    c_row = at(C.data, builder.add(builder.mul(row[r], sc_i), col0))
                    for v in range(V):
                        builder.store(final[r * V + v],
                                      builder.bitcast(at(c_row, const(v * VECTOR_BYTES)),
                                                      vty.as_pointer()), align=size)
            return context.get_dummy_value()
        return sig, codegen
    return tile


tile_4x3 = _tile_intrinsic(VECTORS)
tile_4x1 = _tile_intrinsic(1)


@njit(cache=True, inline="always")
def tiles_fit(a, b, out):
    """True when out = a @ b can be tiled: shapes agree, b's and out's rows are contiguous and
    the column count is a multiple of a vector's W elements."""
    M, K = a.shape
    N = b.shape[1]
    size = a.itemsize
    return (b.shape[0] == K and out.shape[0] == M and out.shape[1] == N and N > 0
            and (N * size) % VECTOR_BYTES == 0
            and b.strides[1] == size and out.strides[1] == size)


@njit(cache=True, inline="always")
def use_tiles(M, K, size, transposed):
    """Where tiles beat OpenBLAS, on CPUs with AVX2 and FMA (bench/gemm_speed.py; bench/
    RESULTS.md, "Register tiles"): a float32 A (M x K) of at most 32 k elements (128 KB: it
    stays in the L2 cache while the column panels pass), and a transposed one (h^T in dW) of at
    most 128 rows; float64 A's up to 64 x 64.  Larger A's lose to OpenBLAS (up to ~25 % at
    256 x 256), which first copies blocks of A into the order its kernel reads them."""
    if not HAS_AVX2_FMA:
        return False
    if size == 4:
        if transposed:
            return M <= 128 and K <= 256
        return M * K <= 128 * 256
    return M * K <= 64 * 64


@njit(cache=True, nogil=True)
def _tiles(a, b, out):
    """out = a @ b by tiles (the conditions of ``tiles_fit`` hold).  Column panels of V*W
    columns outside, row tiles inside, so a panel of b (K x V*W) stays in the L1 cache while
    every row tile of a streams past it."""
    M, K = a.shape
    N = b.shape[1]
    W = VECTOR_BYTES // a.itemsize
    j0 = 0
    while j0 < N:
        wide = j0 + VECTORS * W <= N
        for i0 in range(0, M, ROWS):
            rows = min(ROWS, M - i0)
            if wide:
                tile_4x3(a, b, out, i0, rows, j0, K)
            else:
                tile_4x1(a, b, out, i0, rows, j0, K)
        j0 += VECTORS * W if wide else W


@njit(cache=True, nogil=True)
def matmul(a, b, out):
    """out = a @ b: a (M, K), b (K, N), out (M, N), all of one float dtype.  By register tiles
    where they fit and win (``tiles_fit``, ``use_tiles``), else np.dot (BLAS gemm).  ``a`` may
    be a transposed view (h.T in dW = h^T @ delta)."""
    M, K = a.shape
    transposed = a.strides[0] < a.strides[1]          # a = h.T, read down h's columns
    if tiles_fit(a, b, out) and use_tiles(M, K, a.itemsize, transposed):
        _tiles(a, b, out)
    else:
        np.dot(a, b, out)
