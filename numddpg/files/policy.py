"""The trained policy alone, in plain NumPy: a = clip(mid + half * tanh(MLP_theta(s)), low, high).

    import numddpg
    policy = numddpg.load_policy("policy.npz")   # a file from `numddpg export`, or a run dir
    action = policy(obs)                         # (obs_dim,) -> (act_dim,); (B, obs_dim) -> (B, act_dim)

For deployment and teaching.  This module imports numpy, json and the standard library only:
neither numba nor gymnasium (``import numddpg`` loads its submodules lazily, so
``numddpg.load_policy`` keeps that promise too).  Without numddpg installed, copy this file
and checkpoint.py (and dictobs.py, for a policy of Dict observations) into one folder and
import policy.py from there: it finds them beside itself.

The file is a numddpg checkpoint (numddpg/checkpoint.py) of kind "policy":

    params (P,) float32|float64   the actor's flat parameters, layer by layer:
                                  W_0 (n_0 x n_1, row-major), b_0 (n_1), W_1 (n_1 x n_2), ...
    mid, half (a,)  same dtype    centre and half-range of the action box
    low, high (a,)  float64       the action bounds
    meta: layer_sizes [n_0, ..., n_L] (n_0 = obs_dim, n_L = act_dim), hidden "relu",
          output "tanh", act_dtype (the env's action dtype), algo, env_id, env (its record)
    with observation normalization also obs_shift, obs_scale (n_0,) float64 and meta obs_clip:
          the network reads clip((obs - obs_shift) * obs_scale, -obs_clip, obs_clip)
    for an env with Dict observations also meta obs_layout {"keys", "shapes"}
          (numddpg.files.dictobs.DictLayout.record()): the policy takes such a Dict (or a batch
          of them) and flattens it in that key order into the n_0 numbers the network reads

Layer l computes z_l = h_l @ W_l + b_l from h_0 = obs; hidden layers h_{l+1} = relu(z_l), the
last u = tanh(z_{L-1}) in [-1, 1]^a, and the action is clip(mid + half * u, low, high) — the
same arithmetic as numddpg.nn.mlp_forward, so actions agree with training's to float rounding.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np

try:
    from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint
    from .dictobs import DictLayout, DictObsError
except ImportError:                            # loaded as a lone file: use the modules beside it
    def _beside(name):
        """Module ``name``.py from this file's folder, or None if it is not there."""
        path = Path(__file__).with_name(f"{name}.py")
        spec = importlib.util.spec_from_file_location(f"numddpg_{name}_standalone", path)
        if spec is None or not path.is_file():
            return None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    _checkpoint, _dictobs = _beside("checkpoint"), _beside("dictobs")
    if _checkpoint is None:
        raise ImportError("policy.py needs checkpoint.py in the same folder") from None
    CheckpointError = _checkpoint.CheckpointError
    read_checkpoint = _checkpoint.read_checkpoint
    write_checkpoint = _checkpoint.write_checkpoint
    # (dictobs.py is needed only for policies of Dict observations)
    DictLayout = None if _dictobs is None else _dictobs.DictLayout
    DictObsError = ValueError if _dictobs is None else _dictobs.DictObsError

POLICY_FILE = "policy.npz"
ACT_DTYPES = ("float16", "float32", "float64")


def n_params(sizes):
    """Length of the flat vector: sum over layers of n_l * n_{l+1} (W_l) + n_{l+1} (b_l)."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def _box_agrees(mid, half, low, high):
    """Whether the stored mid and half-range are the box's, to float32 rounding: a file with
    bounds of +-1e308 (whose half-range is no float32 number) or edited bounds is refused.
    (Written here, not taken from numddpg.checks: this module also works as a lone file.)"""
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.maximum(np.abs(low), np.abs(high))
        return bool(np.all(np.abs(mid - (high + low) / 2) <= 1e-6 * scale)
                    and np.all(np.abs(half - (high - low) / 2) <= 1e-6 * scale))


class NumpyPolicy:
    """mu(s) = clip(mid + half * tanh(MLP_theta(s)), low, high) with NumPy alone.

    numddpg's one policy class: training's ``Policy`` (numddpg.training.acting, the one
    ``model.policy`` is) is this class with the jitted forward pass and the noisy action added,
    so that the observation check, the normalization and the squashing into the action box
    are written once, here.  A subclass overrides ``forward`` only; this module stays NumPy
    alone so that reading a policy file compiles nothing.

    Attributes: ``layer_sizes``, ``weights`` and ``biases`` (per-layer views into ``params``),
    ``mid``, ``half``, ``low``, ``high``, ``obs_dim``, ``act_dim``, ``meta`` (the file's record),
    ``obs_norm`` ((shift, scale, clip) or None), ``layout`` (the DictLayout of an env with
    Dict observations, or None).  ``params`` is used by reference, so a policy built on an
    agent's live actor parameters follows its updates.
    """

    def __init__(self, params, layer_sizes, mid, half, low, high, act_dtype="float32",
                 meta=None, obs_norm=None, layout=None):
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.params = np.asarray(params)
        self.dtype = self.params.dtype
        self.obs_dim, self.act_dim = self.layer_sizes[0], self.layer_sizes[-1]
        self.mid = np.asarray(mid, self.dtype)
        self.half = np.asarray(half, self.dtype)
        self.low = np.asarray(low, np.float64)
        self.high = np.asarray(high, np.float64)
        self.act_dtype = np.dtype(act_dtype)
        self.meta = dict(meta or {})
        # observation normalization (shift (o,), scale (o,), clip), as in training, or None;
        # shift and scale by reference (a training run's statistics move on in place)
        self.obs_norm = None if obs_norm is None else (
            np.asarray(obs_norm[0], np.float64), np.asarray(obs_norm[1], np.float64),
            float(obs_norm[2]))
        if layout is not None and layout.obs_dim != self.obs_dim:
            raise ValueError(f"the Dict layout {layout} flattens to {layout.obs_dim} numbers, "
                             f"but the network reads {self.obs_dim}")
        self.layout = layout
        self.weights, self.biases, p = [], [], 0
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            self.weights.append(self.params[p:p + n_in * n_out].reshape(n_in, n_out))
            p += n_in * n_out
            self.biases.append(self.params[p:p + n_out])
            p += n_out

    def __call__(self, obs):
        """Deterministic action(s) for obs (obs_dim,) or (B, obs_dim), as a new array; with a
        Dict layout also for a Dict observation, or a Dict of B rows per entry."""
        obs = self.flat(obs)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have shape ({self.obs_dim},) or (batch, {self.obs_dim}), "
                             f"got {obs.shape}")
        u = self.forward(self.inputs(obs.reshape(-1, self.obs_dim)))
        a = np.clip(self.mid + self.half * u, self.low, self.high).astype(self.act_dtype)
        return a[0] if obs.ndim == 1 else a

    def flat(self, obs):
        """``obs`` as the flat observation s (obs_dim,) or (B, obs_dim): a Dict observation
        flattened by the policy's layout (ValueError naming the key that does not fit), any
        other as an array."""
        if not isinstance(obs, dict):
            return np.asarray(obs)
        if self.layout is None:
            raise ValueError(f"this policy reads flat observations of {self.obs_dim} numbers, "
                             f"not a Dict (keys {sorted(map(str, obs))[:8]})")
        return self.layout.flatten(obs, self.layout.batch_size(obs))

    def inputs(self, obs):
        """h_0, the network's input for observations (B, obs_dim): s_hat = clip((s - shift) *
        scale, -clip, clip) if the policy normalizes, in its dtype, C-contiguous."""
        if self.obs_norm is not None:                             # s_hat, as in training
            shift, scale, clip = self.obs_norm
            obs = np.clip((obs - shift) * scale, -clip, clip)
        return np.ascontiguousarray(obs, dtype=self.dtype)

    def forward(self, h):
        """u = tanh(MLP_theta(h)) (B, act_dim) for inputs h (B, obs_dim) of the policy's dtype."""
        last = len(self.weights) - 1
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ W + b                                         # z_l = h_l @ W_l + b_l
            if l < last:
                np.maximum(h, 0, out=h)                           # h_{l+1} = relu(z_l)
            else:
                np.tanh(h, out=h)                                 # u = tanh(z_{L-1})
        return h

    @classmethod
    def load(cls, path):
        """The policy in ``path`` (a policy file, or a run directory holding policy.npz), as
        this class (``numddpg.load_policy``: a NumpyPolicy).

        Raises CheckpointError if the file is missing, damaged, or not a policy file.
        """
        path = Path(path)
        if path.is_dir():
            path = path / POLICY_FILE
        where = str(path)
        if not path.is_file():
            raise CheckpointError(f"no saved policy at {where!r}; a training run writes "
                                  f"{POLICY_FILE} into its run directory at every epoch end, "
                                  "and `numddpg export RUN_DIR FILE` writes one anywhere")
        meta, arr = read_checkpoint(path, "policy", lambda m: policy_array_specs(m, where))
        if not (np.all(arr["half"] > 0) and np.all(arr["low"] < arr["high"])):
            raise CheckpointError(f"{where}: action box is empty (half={arr['half']}, "
                                  f"low={arr['low']}, high={arr['high']})")
        if not _box_agrees(arr["mid"], arr["half"], arr["low"], arr["high"]):
            raise CheckpointError(f"{where}: the action box low={arr['low']}, high="
                                  f"{arr['high']} is not the one its mid={arr['mid']} and "
                                  f"half={arr['half']} describe (the file is damaged or not "
                                  "numddpg's)")
        if "obs_scale" in arr and not np.all(arr["obs_scale"] > 0):
            raise CheckpointError(f"{where}: obs_scale must be positive, got {arr['obs_scale']}")
        norm = ((arr["obs_shift"], arr["obs_scale"], meta["obs_clip"]) if "obs_clip" in meta
                else None)
        return cls(arr["params"], meta["layer_sizes"], arr["mid"], arr["half"], arr["low"],
                   arr["high"], meta["act_dtype"], meta, norm, read_layout(meta, where))

    def __repr__(self):
        return (f"{type(self).__name__}(layer_sizes={list(self.layer_sizes)}, "
                f"dtype={self.dtype.name}, algo={self.meta.get('algo')!r}, "
                f"env_id={self.meta.get('env_id')!r})")


def save_policy(path, params, layer_sizes, mid, half, low, high, act_dtype="float32",
                obs_norm=None, obs_layout=None, **info):
    """Write a policy file (the format of the module docstring) atomically; ``obs_norm`` is
    (shift, scale, clip) of an observation normalization or None; ``obs_layout`` the
    DictLayout of Dict observations or None; ``info`` holds JSON-able extras for the record
    (algo, env_id, ...).  Returns the path."""
    sizes = [int(n) for n in layer_sizes]
    params = np.ascontiguousarray(params)
    meta = dict(info, kind="policy", layer_sizes=sizes, dtype=params.dtype.name,
                act_dtype=np.dtype(act_dtype).name, hidden_activation="relu",
                output_activation="tanh")
    meta.pop("obs_layout", None)
    if obs_layout is not None:
        meta["obs_layout"] = obs_layout.record()
    arrays = {"params": params, "mid": np.asarray(mid, params.dtype),
              "half": np.asarray(half, params.dtype), "low": np.asarray(low, np.float64),
              "high": np.asarray(high, np.float64)}
    if obs_norm is not None:
        arrays["obs_shift"] = np.asarray(obs_norm[0], np.float64)
        arrays["obs_scale"] = np.asarray(obs_norm[1], np.float64)
        meta["obs_clip"] = float(obs_norm[2])
    return write_checkpoint(path, arrays, meta)


def policy_array_specs(meta, where="policy"):
    """{name: (dtype, shape)} the record promises, after checking its fields."""
    sizes = meta.get("layer_sizes")
    if not (isinstance(sizes, list) and len(sizes) >= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)):
        raise CheckpointError(f"{where}: layer_sizes {sizes!r} must be a list of at least two "
                              "positive integers [obs_dim, *hidden, act_dim]")
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        raise CheckpointError(f"{where}: dtype {dtype!r} must be 'float32' or 'float64'")
    if meta.get("act_dtype") not in ACT_DTYPES:
        raise CheckpointError(f"{where}: act_dtype {meta.get('act_dtype')!r} must be one of "
                              f"{ACT_DTYPES}")
    if meta.get("hidden_activation") != "relu" or meta.get("output_activation") != "tanh":
        raise CheckpointError(f"{where}: activations {meta.get('hidden_activation')!r}/"
                              f"{meta.get('output_activation')!r}; this reader computes relu "
                              "hidden layers and a tanh output")
    a = sizes[-1]
    specs = {"params": (dtype, (n_params(sizes),)), "mid": (dtype, (a,)), "half": (dtype, (a,)),
             "low": ("float64", (a,)), "high": ("float64", (a,))}
    if "obs_clip" in meta:                     # a policy that normalizes its observations
        clip = meta["obs_clip"]
        if not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip > 0
                and clip < float("inf")):
            raise CheckpointError(f"{where}: obs_clip {clip!r} must be a positive number")
        specs.update(obs_shift=("float64", (sizes[0],)), obs_scale=("float64", (sizes[0],)))
    read_layout(meta, where)
    return specs


def read_layout(meta, where):
    """The DictLayout of a policy record's ``obs_layout`` (checked: typed, bounded, and
    flattening to the network's n_0 inputs), or None when the record has none."""
    if "obs_layout" not in meta:
        return None
    if DictLayout is None:
        raise CheckpointError(f"{where}: this policy takes Dict observations; put dictobs.py "
                              "beside policy.py to read it")
    try:
        return DictLayout.from_record(meta["obs_layout"], meta["layer_sizes"][0])
    except DictObsError as exc:
        raise CheckpointError(f"{where}: obs_layout: {exc}") from None


# The NumpyPolicy in a policy file or run directory (numddpg.load_policy); the training
# package's Policy.load is the same reader, giving its jitted subclass.
load_policy = NumpyPolicy.load


__all__ = ["CheckpointError", "NumpyPolicy", "load_policy", "save_policy", "POLICY_FILE"]
