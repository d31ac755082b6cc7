"""Multi-layer perceptrons on one flat parameter vector, with Numba forward/backward kernels.

Layout (docs/math.md, section 1, "The flat layout"): for sizes = [n_0, n_1, ..., n_L] the flat
vector ``params`` holds, layer by layer,

    W_0 (n_0 x n_1, row-major), b_0 (n_1), W_1 (n_1 x n_2), b_1 (n_2), ..., b_{L-1} (n_L)

and layer l computes  z_l = h_l @ W_l + b_l  with h_0 = x.  Hidden layers use
h_{l+1} = relu(z_l); the output layer is identity or tanh.  Gradients and Adam moments use the
same layout, so an optimizer step is one loop over a 1-D array.

The kernels never allocate large arrays: activations go into a flat workspace ``acts`` that
holds, for a batch of B rows, h_1 (B x n_1), h_2 (B x n_2), ..., h_L (B x n_L) back to back.
"""
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS that Numba's np.dot calls, now, so
from numba import njit            # that threadpoolctl sees it and numddpg.threads can set it)

from .gemm import matmul

OUTPUTS = ("identity", "tanh")
DTYPES = (np.float32, np.float64)


def check_dtype(dtype):
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise ValueError."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}; "
                         "use np.float32 for training and np.float64 for gradient checks")
    return dt


def check_sizes(sizes, name="sizes"):
    """Validate layer sizes [n_0, ..., n_L] (L >= 1, every n_i a positive integer)."""
    try:
        sizes = tuple(int(s) for s in sizes)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of positive integers, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"{name} needs at least an input and an output size, got {sizes!r}")
    bad = [s for s in sizes if s <= 0]
    if bad:
        raise ValueError(f"{name} must all be positive, got {sizes!r} (bad: {bad})")
    return sizes


def n_params(sizes):
    """Number of parameters: sum over layers of n_l * n_{l+1} + n_{l+1}."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def layer_slices(sizes):
    """[(W slice, W shape, b slice)] for each layer of the flat layout."""
    out, p = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = slice(p, p + n_in * n_out)
        p += n_in * n_out
        b = slice(p, p + n_out)
        p += n_out
        out.append((w, (n_in, n_out), b))
    return out


def init_params(sizes, dtype, rng):
    """PyTorch nn.Linear's default: every W_l and b_l ~ U(-1/sqrt(n_l), +1/sqrt(n_l))."""
    params = np.empty(n_params(sizes), dtype=dtype)
    for (w, shape, b) in layer_slices(sizes):
        bound = 1.0 / np.sqrt(shape[0])
        params[w] = rng.uniform(-bound, bound, size=shape[0] * shape[1])
        params[b] = rng.uniform(-bound, bound, size=shape[1])
    return params


def acts_size(sizes, batch):
    """Length of the activation workspace for ``batch`` rows: B * (n_1 + ... + n_L)."""
    return batch * sum(sizes[1:])


# ---------------------------------------------------------------------------------------------
# Kernels.  Shapes: B batch rows; params (P,); sizes (L+1,) int64; x (B, n_0) C-contiguous.
# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def mlp_forward(params, sizes, tanh_out, x, acts):
    """Forward pass; writes h_1..h_L into ``acts`` and returns the output view h_L (B, n_L).

    For l < L-1:  h_{l+1} = relu(h_l @ W_l + b_l)        (hidden layers)
    For l = L-1:  h_L = tanh(h_{L-1} @ W + b)  if tanh_out, else the affine output itself.
    """
    B = x.shape[0]
    L = sizes.shape[0] - 1
    p = 0
    a = 0
    h = x
    for l in range(L):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        W = params[p:p + n_in * n_out].reshape((n_in, n_out))
        p += n_in * n_out
        b = params[p:p + n_out]
        p += n_out
        z = acts[a:a + B * n_out].reshape((B, n_out))
        a += B * n_out
        matmul(h, W, z)                      # z = h @ W  (numddpg.gemm)
        if l < L - 1:
            for i in range(B):
                for j in range(n_out):
                    v = z[i, j] + b[j]
                    if v <= 0:               # relu; a NaN stays NaN, as in torch.relu, so
                        z[i, j] = 0          # that a poisoned weight shows in the losses
                    else:                    # (stores, not a ternary: keeps float32)
                        z[i, j] = v
        elif tanh_out:
            for i in range(B):
                for j in range(n_out):
                    z[i, j] = np.tanh(z[i, j] + b[j])
        else:
            for i in range(B):
                for j in range(n_out):
                    z[i, j] += b[j]
        h = z
    return h


@njit(cache=True)
def mlp_backward(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf):
    """Backward pass of the forward pass that filled ``acts`` for the same ``x``.

    dout (B, n_L)        dL/dh_L, the upstream gradient; not modified.
    grad (P,)            written with dL/dparams in the flat layout; skipped when grad.size == 0.
    dx   (B, n_0 - c)    written with dL/dx[:, c:] where c = dx_col0; skipped when dx.size == 0.
                         (The actor step only needs the action columns of the critic's input.)
    delta_buf, dh_buf    flat workspaces of at least B * max(sizes) elements: delta lives in
                         delta_buf, each dh_l in dh_buf.

    Per layer, going down (delta = dL/dz_l, forward was z_l = h_l @ W_l + b_l):
        dW_l = h_l^T @ delta          db_l = sum over rows of delta
        dh_l = delta @ W_l^T          delta_{l-1} = dh_l * [h_l > 0]   (relu' from its output)
    The output layer starts from delta = dout * (1 - h_L^2) for tanh, delta = dout otherwise.
    """
    B = x.shape[0]
    L = sizes.shape[0] - 1
    want_grad = grad.shape[0] > 0
    want_dx = dx.size > 0
    a_end = 0
    for l in range(L):
        a_end += B * sizes[l + 1]
    p_end = params.shape[0]

    n_last = sizes[L]
    h_last = acts[a_end - B * n_last:a_end].reshape((B, n_last))
    delta = delta_buf[:B * n_last].reshape((B, n_last))
    for i in range(B):
        for j in range(n_last):
            if tanh_out:
                delta[i, j] = dout[i, j] * (1 - h_last[i, j] * h_last[i, j])
            else:
                delta[i, j] = dout[i, j]
    for l in range(L - 1, -1, -1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        b_off = p_end - n_out
        w_off = b_off - n_in * n_out
        p_end = w_off
        a_end -= B * n_out
        if l > 0:
            h = acts[a_end - B * n_in:a_end].reshape((B, n_in))
        else:
            h = x
        if want_grad:
            dW = grad[w_off:b_off].reshape((n_in, n_out))
            matmul(h.T, delta, dW)           # dW_l = h_l^T @ delta
            db = grad[b_off:b_off + n_out]
            for j in range(n_out):
                db[j] = 0
            for i in range(B):
                for j in range(n_out):
                    db[j] += delta[i, j]
        if l > 0:
            W = params[w_off:b_off].reshape((n_in, n_out))
            dh = dh_buf[:B * n_in].reshape((B, n_in))
            np.dot(delta, W.T, dh)           # dh_l = delta @ W_l^T
            # delta_{l-1} = dh_l * [h_l > 0] (relu'(z) = [z > 0] = [h > 0]), into delta_buf,
            # whose old delta is spent.  Zeroing dh in place would compile to AVX masked stores,
            # which are slow on AMD Zen; a store on both branches is a plain vector blend.
            delta = delta_buf[:B * n_in].reshape((B, n_in))
            for i in range(B):
                for j in range(n_in):
                    if h[i, j] <= 0:
                        delta[i, j] = 0
                    else:                    # (a NaN in h keeps dh, as before)
                        delta[i, j] = dh[i, j]
        elif want_dx:
            c = dx_col0
            Wc = params[w_off + c * n_out:b_off].reshape((n_in - c, n_out))
            np.dot(delta, Wc.T, dx)          # dx[:, c:] = delta @ W_0[c:, :]^T


class MLP:
    """A ReLU MLP whose weights and biases live in one contiguous flat vector.

    Parameters
    ----------
    sizes : sequence of int
        [n_0 (inputs), n_1, ..., n_L (outputs)], each positive.
    output : {"identity", "tanh"}
        Activation of the output layer.
    dtype : np.float32 or np.float64
    seed : int or None
        Seed for the initialisation W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Attributes
    ----------
    params : (P,) array — the source of truth.
    weights, biases : lists of views into ``params`` (W_l is (n_l, n_{l+1}), b_l is (n_{l+1},)).
    """

    def __init__(self, sizes, output="identity", dtype=np.float32, seed=None, rng=None):
        self.sizes = check_sizes(sizes)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(seed) if rng is None else rng
        self.params = init_params(self.sizes, self.dtype, rng)
        self._sizes_arr = np.asarray(self.sizes, dtype=np.int64)
        self._tanh = output == "tanh"
        self._batch = 0
        self._views()

    def _views(self):
        self.weights = [self.params[w].reshape(shape) for (w, shape, _) in layer_slices(self.sizes)]
        self.biases = [self.params[b] for (_, _, b) in layer_slices(self.sizes)]

    @property
    def n_params(self):
        return self.params.shape[0]

    def copy(self):
        """A new MLP with the same sizes, output, dtype and an independent copy of params."""
        twin = MLP.__new__(MLP)
        twin.__dict__.update(self.__dict__)
        twin.params = self.params.copy()
        twin._batch = 0
        twin._views()
        return twin

    def load_params(self, params):
        """Copy ``params`` (same length) into this network in place; views stay valid."""
        params = np.asarray(params)
        if params.shape != self.params.shape:
            raise ValueError(f"params must have shape {self.params.shape}, got {params.shape}")
        self.params[:] = params

    def _workspace(self, batch):
        if batch > self._batch:
            self._acts = np.empty(acts_size(self.sizes, batch), self.dtype)
            self._delta_buf = np.empty(batch * max(self.sizes), self.dtype)
            self._dh_buf = np.empty_like(self._delta_buf)
            self._batch = batch

    def _check_x(self, x):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (batch, {self.sizes[0]}), got {x.shape}")
        return x

    def forward(self, x):
        """y = MLP(x) for x of shape (B, n_0); returns a new (B, n_L) array."""
        x = self._check_x(x)
        self._workspace(x.shape[0])
        return mlp_forward(self.params, self._sizes_arr, self._tanh, x, self._acts).copy()

    __call__ = forward

    def backward(self, x, dout, need_dx=True):
        """Gradients of L at x given dout = dL/dy (B, n_L): returns (dparams (P,), dx (B, n_0)).

        Runs the forward pass on x first, so the activations always belong to this x.
        ``dx`` is None when ``need_dx`` is False.
        """
        x = self._check_x(x)
        B = x.shape[0]
        dout = np.ascontiguousarray(dout, dtype=self.dtype)
        if dout.shape != (B, self.sizes[-1]):
            raise ValueError(f"dout must have shape {(B, self.sizes[-1])}, got {dout.shape}")
        self._workspace(B)
        mlp_forward(self.params, self._sizes_arr, self._tanh, x, self._acts)
        grad = np.empty_like(self.params)
        dx = np.empty((B, self.sizes[0]) if need_dx else (0, 0), self.dtype)
        mlp_backward(self.params, self._sizes_arr, self._tanh, x, self._acts, dout, grad, dx, 0,
                     self._delta_buf, self._dh_buf)
        return grad, (dx if need_dx else None)

    def __repr__(self):
        return f"MLP(sizes={list(self.sizes)}, output={self.output!r}, dtype={self.dtype.name})"
