"""numddpg.kernels.nn: the flat-parameter layout, the initialisation, and the forward/backward kernels
held equal to the plain-NumPy twin (numddpg.kernels.reference) and to centred finite differences.

Tolerances used throughout (float64 unless stated):

TWIN  1e-12 (forward) / 1e-10 (gradients), relative error (numddpg.kernels.gradcheck.rel_error).
      Kernel and twin evaluate the same formulas and differ only in summation order (BLAS
      blocking), ~1e-16 per operation; gradients pass through up to 5 layers of sums, hence the
      extra margin.  A wrong term (misrouted gradient, missing relu mask, transposed W) is an
      O(1) relative error, so neither bound can hide one.
FD    1e-6 relative error against centred differences with h = 1e-6: truncation O(h^2) ~ 1e-12,
      rounding eps_mach |f| / h ~ 1e-10 relative.  Examples whose ReLU inputs come within 1e-4
      of the kink are rejected (``assume``): a step of h there can cross the kink.
FD_ABS 1e-9 absolute, the rounding floor of centred differences (~eps_mach |loss terms| / h):
      a tensor whose gradients are all tiny (a one-unit layer mostly off) cannot reach 1e-6
      *relative* error through it, so a tensor passes if it meets FD *or* FD_ABS.  Above
      gradients of ~1e-3 the absolute bound is the stricter one.
F32   float32 kernels against the float64 twin: eps_mach(float32) = 1.2e-7, times sums of up to
      64 terms over 2 layers, gives ~1e-5 relative to the output's scale.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from numddpg.kernels import reference as ref
from numddpg.kernels.gradcheck import (KINK_MARGIN, directional_check, kink_margin, numeric_grad,
                                       rel_error)
from numddpg.kernels.nn import (MLP, OUTPUTS, acts_size, init_params, layer_slices, mlp_backward,
                                mlp_forward, n_params)

TWIN_FWD = 1e-12
TWIN_GRAD = 1e-10
FD = 1e-6
FD_ABS = 1e-9
F32 = 1e-5
H = 1e-6


def run_kernels(params, sizes, tanh_out, x, dout, dx_col0=0):
    """mlp_forward then mlp_backward on NaN-filled outputs and workspaces (so an element the
    kernel forgets to write shows up as NaN).  Returns (y, grad (P,), dx (B, n_0 - dx_col0))."""
    sizes_arr = np.asarray(sizes, np.int64)
    B = x.shape[0]
    acts = np.full(acts_size(sizes, B), np.nan, params.dtype)
    delta_buf = np.full(B * max(sizes), np.nan, params.dtype)
    dh_buf = np.full(B * max(sizes), np.nan, params.dtype)
    y = mlp_forward(params, sizes_arr, tanh_out, x, acts).copy()
    grad = np.full(params.shape, np.nan, params.dtype)
    dx = np.full((B, sizes[0] - dx_col0), np.nan, params.dtype)
    mlp_backward(params, sizes_arr, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf)
    return y, grad, dx


def per_tensor_errors(a, b, sizes):
    """{"W_0": rel_error, "b_0": ..., ...} of two flat gradients."""
    out = {}
    for l, (w, _, bsl) in enumerate(layer_slices(sizes)):
        out[f"W_{l}"] = rel_error(a[w], b[w])
        out[f"b_{l}"] = rel_error(a[bsl], b[bsl])
    return out


def fd_failures(analytic, numeric, sizes):
    """Tensors whose error exceeds both FD (relative) and FD_ABS (absolute): {} if all pass."""
    out = {}
    for l, (w, _, bsl) in enumerate(layer_slices(sizes)):
        for name, sl in ((f"W_{l}", w), (f"b_{l}", bsl)):
            rel = rel_error(analytic[sl], numeric[sl])
            err = float(np.abs(analytic[sl] - numeric[sl]).max())
            if rel > FD and err > FD_ABS:
                out[name] = (rel, err)
    return out


# --- layout ----------------------------------------------------------------------------------

def test_params_is_one_contiguous_vector_and_layers_are_views():
    net = MLP([3, 4, 2], dtype=np.float64, seed=0)
    assert net.params.ndim == 1 and net.params.flags.c_contiguous
    assert net.params.shape == (3 * 4 + 4 + 4 * 2 + 2,) == (net.n_params,) == (n_params([3, 4, 2]),)
    # Layout W_0 (3x4, row-major) [0, 12), b_0 [12, 16), W_1 (4x2) [16, 24), b_1 [24, 26).
    tensors = [net.weights[0], net.biases[0], net.weights[1], net.biases[1]]
    for (off, shape), t in zip([(0, (3, 4)), (12, (4,)), (16, (4, 2)), (24, (2,))], tensors):
        assert t.shape == shape
        assert np.shares_memory(t, net.params)
        np.testing.assert_array_equal(t.ravel(), net.params[off:off + t.size])
    # Writing a view writes params (row-major: W_1[2, 1] is element 16 + 2*2 + 1) ...
    net.weights[1][2, 1] = 7.0
    net.biases[0][3] = -5.0
    assert net.params[16 + 2 * 2 + 1] == 7.0 and net.params[12 + 3] == -5.0
    # ... and writing params writes the views.
    net.params[0] = 42.0
    assert net.weights[0][0, 0] == 42.0
    # load_params copies in place: the views stay valid.
    net.load_params(np.arange(26.0))
    assert net.weights[1][0, 0] == 16.0 and net.biases[1][1] == 25.0
    with pytest.raises(ValueError, match=r"params must have shape \(26,\), got \(25,\)"):
        net.load_params(np.zeros(25))


def test_copy_is_independent_with_its_own_views():
    net = MLP([2, 3, 1], dtype=np.float64, seed=1)
    twin = net.copy()
    np.testing.assert_array_equal(twin.params, net.params)
    assert not np.shares_memory(twin.params, net.params)
    twin.weights[0][0, 0] = 99.0
    assert twin.params[0] == 99.0 and net.params[0] != 99.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_is_uniform_within_one_over_sqrt_fan_in(dtype):
    sizes = [100, 400, 3]
    net = MLP(sizes, dtype=dtype, seed=3)
    assert net.params.dtype == dtype
    for W, b in zip(net.weights, net.biases):
        bound = 1.0 / np.sqrt(W.shape[0])          # fan_in, for weights and biases alike
        # Rounding a float64 draw < bound to float32 can land on float32(bound), 1 ulp above.
        slack = 1 + (1.2e-7 if dtype == np.float32 else 0.0)
        for t in (W, b):
            assert np.all(np.abs(t) <= bound * slack)
        # The range is filled: P(all of >= 400 uniform draws within 0.95 bound) = 0.95^400 ~ 1e-9.
        big = W if W.size >= 400 else None
        if big is not None:
            assert np.abs(big).max() > 0.95 * bound
        # Variance bound^2 / 3: for 40,000 draws the estimator's relative sd is 0.45 %, so 3 %
        # is > 6 sd, and still rejects Xavier's sqrt(6 / (fan_in + fan_out)) (+20 % variance).
        if W.size >= 10_000:
            assert abs(np.var(W) / (bound ** 2 / 3) - 1) < 0.03
    # b_0 has fan_in 100 (bound 0.1) though 400 outputs: a 1/sqrt(fan_out) bias would stay < 0.05.
    assert np.abs(net.biases[0]).max() > 0.95 * 0.1


def test_init_is_seeded():
    a = MLP([4, 8, 2], seed=7).params
    np.testing.assert_array_equal(a, MLP([4, 8, 2], seed=7).params)
    assert not np.array_equal(a, MLP([4, 8, 2], seed=8).params)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(init_params((4, 8, 2), np.float64, rng),
                                  init_params((4, 8, 2), np.float64, np.random.default_rng(5)))


# --- forward ---------------------------------------------------------------------------------

@pytest.mark.parametrize("output", OUTPUTS)
def test_forward_matches_reference_float64(output, rng):
    sizes = [5, 16, 9, 3]
    net = MLP(sizes, output=output, dtype=np.float64, seed=2)
    x = rng.standard_normal((7, 5))
    y_ref, _ = ref.mlp_forward(net.params, sizes, output, x)
    y = net.forward(x)
    assert y.shape == (7, 3) and y.dtype == np.float64
    assert rel_error(y, y_ref) < TWIN_FWD        # TWIN tolerance, see module docstring


@pytest.mark.parametrize("output", OUTPUTS)
def test_float32_forward_and_backward_track_float64_reference(output, rng):
    sizes = [6, 64, 64, 2]
    net = MLP(sizes, output=output, dtype=np.float32, seed=4)
    x = rng.standard_normal((10, 6))
    dout = rng.standard_normal((10, 2))
    p64 = net.params.astype(np.float64)
    y_ref, cache = ref.mlp_forward(p64, sizes, output, x)
    g_ref, dx_ref = ref.mlp_backward(dout, cache)
    y = net.forward(x)
    g, dx = net.backward(x, dout)
    assert y.dtype == g.dtype == dx.dtype == np.float32
    # F32 tolerance, see module docstring.
    assert rel_error(y, y_ref) < F32
    assert rel_error(g, g_ref) < F32
    assert rel_error(dx, dx_ref) < F32


def test_workspace_grows_and_shrinks_with_the_batch(rng):
    """Reusing the activation workspace across batch sizes must not mix rows up."""
    sizes = [3, 8, 8, 2]
    net = MLP(sizes, output="tanh", dtype=np.float64, seed=0)
    for B in (2, 9, 4, 1, 9):
        x = rng.standard_normal((B, 3))
        dout = rng.standard_normal((B, 2))
        y_ref, cache = ref.mlp_forward(net.params, sizes, "tanh", x)
        g_ref, dx_ref = ref.mlp_backward(dout, cache)
        assert rel_error(net.forward(x), y_ref) < TWIN_FWD
        g, dx = net.backward(x, dout)
        assert rel_error(g, g_ref) < TWIN_GRAD and rel_error(dx, dx_ref) < TWIN_GRAD
        g2, no_dx = net.backward(x, dout, need_dx=False)
        assert no_dx is None
        np.testing.assert_array_equal(g2, g)   # same kernel, same inputs: bit for bit


# --- property tests of the kernels --------------------------------------------------------------

@st.composite
def mlp_cases(draw):
    """sizes [n_0, h_1..h_d, n_L] with 1-4 hidden layers of width 1-32, batch 1-16, an output
    activation, the first input column of dx, and a seed for every value (params, x, dout)."""
    depth = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 32)) for _ in range(depth + 2)]
    batch = draw(st.integers(1, 16))
    output = draw(st.sampled_from(OUTPUTS))
    dx_col0 = draw(st.integers(0, sizes[0] - 1))
    seed = draw(st.integers(0, 2**32 - 1))
    return sizes, batch, output, dx_col0, seed


def draw_values(sizes, batch, seed):
    """Init-scale params, x ~ N(0, 1) and a random upstream gradient dout ~ N(0, 1) (never all
    ones: ones hide misrouted gradients)."""
    rng = np.random.default_rng(seed)
    params = init_params(sizes, np.float64, rng)
    x = rng.standard_normal((batch, sizes[0]))
    dout = rng.standard_normal((batch, sizes[-1]))
    return params, x, dout


@given(mlp_cases())
def test_kernels_equal_reference_twin_and_leave_inputs_alone(case):
    sizes, batch, output, dx_col0, seed = case
    params, x, dout = draw_values(sizes, batch, seed)
    copies = params.copy(), x.copy(), dout.copy()
    y, grad, dx = run_kernels(params, sizes, output == "tanh", x, dout, dx_col0)
    # inputs unmodified, bit for bit
    for before, after in zip(copies, (params, x, dout)):
        np.testing.assert_array_equal(after, before)
    y_ref, cache = ref.mlp_forward(params, sizes, output, x)
    g_ref, dx_ref = ref.mlp_backward(dout, cache)
    assert not np.isnan(grad).any() and not np.isnan(dx).any()   # every element written
    assert rel_error(y, y_ref) < TWIN_FWD                          # TWIN, module docstring
    errs = per_tensor_errors(grad, g_ref, sizes)
    assert max(errs.values()) < TWIN_GRAD, errs
    assert rel_error(dx, dx_ref[:, dx_col0:]) < TWIN_GRAD


@given(mlp_cases())
def test_kernel_gradients_equal_centred_differences(case):
    """L(params, x) = sum(dout * MLP(x)) so dL/dparams and dL/dx are the kernels' VJPs."""
    sizes, batch, output, _, seed = case
    params, x, dout = draw_values(sizes, batch, seed)
    assume(kink_margin(params, sizes, output, x) > KINK_MARGIN)   # FD tolerance, docstring
    _, grad, dx = run_kernels(params, sizes, output == "tanh", x, dout)

    def loss_of_params(p):
        return float(np.sum(dout * ref.mlp_forward(p, sizes, output, x)[0]))

    def loss_of_x(xf):
        return float(np.sum(dout * ref.mlp_forward(params, sizes, output, xf.reshape(x.shape))[0]))

    p = params.copy()
    g_num = numeric_grad(loss_of_params, p, H)
    assert fd_failures(grad, g_num, sizes) == {}                 # FD or FD_ABS, docstring
    dx_num = numeric_grad(loss_of_x, x.ravel().copy(), H).reshape(x.shape)
    assert rel_error(dx, dx_num) <= FD or np.abs(dx - dx_num).max() <= FD_ABS
    # Directional check of the whole flat vector (step 1e-5, see gradcheck.check_objective);
    # dout ~ N(0, 1) keeps <grad, t> well above the rounding floor here.
    assert directional_check(loss_of_params, grad, p, np.random.default_rng(seed), 1e-5) <= FD


@given(mlp_cases())
def test_mlp_class_backward_equals_kernels(case):
    sizes, batch, output, _, seed = case
    params, x, dout = draw_values(sizes, batch, seed)
    net = MLP(sizes, output=output, dtype=np.float64, seed=0)
    net.load_params(params)
    _, grad, dx = run_kernels(params, sizes, output == "tanh", x, dout)
    g, dxm = net.backward(x, dout)
    # Same kernels on the same inputs: equal up to BLAS's run-to-run rounding (TWIN bound).
    assert rel_error(g, grad) < TWIN_GRAD and rel_error(dxm, dx) < TWIN_GRAD


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes, match", [
    ([0, 3], r"positive.*\[0\]"),
    ([3, -1, 2], r"positive.*\[-1\]"),
    ([3], "at least an input and an output"),
    ([3, "a"], "sequence of positive integers"),
])
def test_bad_sizes_raise(sizes, match):
    with pytest.raises(ValueError, match=match):
        MLP(sizes)


def test_bad_output_and_dtype_raise():
    with pytest.raises(ValueError, match="output must be one of .* got 'relu'"):
        MLP([2, 2], output="relu")
    for dtype in (np.int32, np.float16, np.complex128):
        msg = f"dtype must be float32 or float64, got {np.dtype(dtype)}"
        with pytest.raises(ValueError, match=msg):
            MLP([2, 2], dtype=dtype)


def test_wrong_x_and_dout_shapes_raise():
    net = MLP([3, 4, 2], dtype=np.float64, seed=0)
    for bad in (np.zeros((5, 4)), np.zeros(3), np.zeros((2, 3, 1))):
        msg = rf"x must have shape \(batch, 3\), got {re_shape(bad)}"
        with pytest.raises(ValueError, match=msg):
            net.forward(bad)
    with pytest.raises(ValueError, match=r"dout must have shape \(5, 2\), got \(5, 3\)"):
        net.backward(np.zeros((5, 3)), np.zeros((5, 3)))


def re_shape(a):
    """The regex-escaped repr of a's shape, as the error message prints it."""
    return str(a.shape).replace("(", r"\(").replace(")", r"\)")
