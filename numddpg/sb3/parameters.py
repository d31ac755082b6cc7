"""SB3's parameter dicts of an agent: ``get_parameters()`` / ``set_parameters()`` and the
policy's ``state_dict()``, under the names and shapes SB3's TD3Policy gives them: torch tensors
if the program has imported torch (SB3's code has; ``as_tensors``), else NumPy arrays.

    get_parameters()   {"policy": the policy's state dict,
                        "actor.optimizer": the actor's Adam state, "critic.optimizer": the
                        critics' Adam state (one Adam over all critics, as SB3's)}

The policy's state dict (SB3's MlpPolicy, in its order):

    actor.mu.<2l>.weight, .bias            actor layer l: W_l (n_{l+1}, n_l), b_l (n_{l+1},)
    actor_target.mu.<2l>.weight, .bias     its target
    critic.qf<k>.<2l>.weight, .bias        critic k + 1 (k = 0 .. n_critics - 1)
    critic_target.qf<k>.<2l>.weight, ...   their targets

(index 2l: SB3's nn.Sequential alternates Linear and ReLU).  A weight is torch's layout, the
transpose of numddpg's W_l view (n_l, n_{l+1}); every array is a copy.  The values are
numddpg's networks: the actor's tanh output u is scaled to mid + half u as SB3's is, but the
critics read actions in the env's units (SB3's read the rescaled [-1, 1]), so weights do not
carry over to SB3's DDPG/TD3.

An optimizer's dict is torch.optim.Adam's ``state_dict()``: ``state`` {i: {"step",
"exp_avg", "exp_avg_sq"}} per parameter tensor i of the network(s), in the policy's order
(empty before the first step, as torch's), and ``param_groups`` [{"lr", "betas", "eps", ...,
"params": [0 .. n-1]}].  numddpg keeps one step count per optimizer (t_pi, t_q), Adam's
moments m and v in the networks' flat layout, and its betas, eps and weight decay as
hyperparameters (policy_kwargs' optimizer_kwargs): a dict must have the model's.  A dict's
``lr`` is not taken: as in SB3, whose learning-rate schedule sets it before each training
round, the model's schedule gives it.

What SB3's dicts do not hold stays as it is on ``set_parameters``: the minibatch generator's
state and TD3's policy-delay clock (SB3 keeps neither in its parameters).
"""
import collections
import sys

import numpy as np

from ..kernels.nn import layer_slices

OBJECTS = ("policy", "actor.optimizer", "critic.optimizer")   # SB3's, in its order
# torch.optim.Adam's param_group entries numddpg's Adam never varies, and the flags that name
# torch's implementations (any value computes the same: not checked)
ADAM_FIXED = {"amsgrad": False, "maximize": False}
IMPLEMENTATION_FLAGS = {"foreach": None, "capturable": False, "differentiable": False,
                        "fused": None}


class ParameterError(ValueError, RuntimeError):
    """A parameter dict that does not fit the model: a ValueError, as numddpg's checks raise,
    and a RuntimeError, as torch's ``load_state_dict(strict=True)`` raises for the same
    mistake (code written for SB3 catches that)."""


def _critic_keys(k):
    """The state_dict() names of critic k (1-based): its params, target, Adam m and v."""
    if k == 1:
        return "critic", "critic_targ", "q_m", "q_v"
    return f"critic{k}", f"critic{k}_targ", f"q{k}_m", f"q{k}_v"


def _networks(agent):
    """[(SB3 prefix, state_dict() name, layer sizes)] of the policy, in SB3's order."""
    n = int(agent.n_critics)
    actor, critic = agent.actor.sizes, agent.critic.sizes
    nets = [("actor.mu", "actor", actor), ("actor_target.mu", "actor_targ", actor)]
    nets += [(f"critic.qf{k - 1}", _critic_keys(k)[0], critic) for k in range(1, n + 1)]
    nets += [(f"critic_target.qf{k - 1}", _critic_keys(k)[1], critic) for k in range(1, n + 1)]
    return nets


def _optimizers(agent):
    """{SB3 object: ([(m name, v name, layer sizes)], counter name, learning rate of the
    next updates)}."""
    critic = agent.critic.sizes
    pi_lr, q_lr = agent.learning_rates
    return {"actor.optimizer": ([("pi_m", "pi_v", agent.actor.sizes)], "t_pi", pi_lr),
            "critic.optimizer": ([_critic_keys(k)[2:] + (critic,)
                                  for k in range(1, int(agent.n_critics) + 1)],
                                 "t_q", q_lr)}


def _adam_group(agent):
    """torch.optim.Adam's param_group entries of the agent's Adam (all but lr, params and
    the implementation flags)."""
    return {"betas": (agent.adam_beta1, agent.adam_beta2), "eps": agent.adam_eps,
            "weight_decay": agent.weight_decay, **ADAM_FIXED,
            "decoupled_weight_decay": agent.decoupled_weight_decay}


def network_tensors(prefix, flat, sizes):
    """[(name, array)] of one network's flat vector in SB3's names and torch's layout."""
    out = []
    for l, (w, shape, b) in enumerate(layer_slices(sizes)):
        out.append((f"{prefix}.{2 * l}.weight", flat[w].reshape(shape).T.copy()))
        out.append((f"{prefix}.{2 * l}.bias", flat[b].copy()))
    return out


def _shapes(sizes):
    """The torch shapes of one network's tensors, in order: (out, in), (out,) per layer."""
    return [s for n_in, n_out in zip(sizes[:-1], sizes[1:]) for s in ((n_out, n_in), (n_out,))]


def policy_state_dict(agent):
    """The policy's state dict (module docstring): an OrderedDict of copies."""
    state = agent.state_dict()
    return collections.OrderedDict(
        item for prefix, name, sizes in _networks(agent)
        for item in network_tensors(prefix, state[name], sizes))


def optimizer_state_dict(agent, name):
    """torch.optim.Adam's state_dict() of SB3's ``name`` ("actor.optimizer" or
    "critic.optimizer")."""
    state = agent.state_dict()
    nets, counter, lr = _optimizers(agent)[name]
    step = int(state["counters"][agent.counter_names.index(counter)])
    m = [a for m_name, _, sizes in nets for _, a in network_tensors("", state[m_name], sizes)]
    v = [a for _, v_name, sizes in nets for _, a in network_tensors("", state[v_name], sizes)]
    per_tensor = {} if step == 0 else {
        i: {"step": np.array(step, np.float32), "exp_avg": mi, "exp_avg_sq": vi}
        for i, (mi, vi) in enumerate(zip(m, v))}
    group = {"lr": lr, **_adam_group(agent), **IMPLEMENTATION_FLAGS,
             "params": list(range(len(m)))}
    return {"state": per_tensor, "param_groups": [group]}


def parameters(agent):
    """SB3's ``get_parameters()`` of ``agent`` (module docstring)."""
    return as_tensors({"policy": policy_state_dict(agent),
                       **{name: optimizer_state_dict(agent, name) for name in OBJECTS[1:]}})


def as_tensors(tree):
    """``tree`` (dicts and lists of arrays) with its arrays as torch tensors (sharing their
    memory) if the program has imported torch, as SB3's code does: its dicts hold tensors, and
    code written for it calls torch on them.  numddpg never imports torch itself: without it
    the arrays stay NumPy's."""
    torch = sys.modules.get("torch")
    if torch is None:
        return tree
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree)
    if isinstance(tree, dict):
        return type(tree)((key, as_tensors(value)) for key, value in tree.items())
    if isinstance(tree, list):
        return [as_tensors(value) for value in tree]
    return tree


# ---------------------------------------------------------------------------------------------
# Putting them back
# ---------------------------------------------------------------------------------------------

def _array(what, value, shape, dtype):
    """``value`` (a NumPy array, or anything np.asarray takes: a CPU torch tensor) as an
    array of ``shape`` in ``dtype``, or ParameterError."""
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ParameterError(f"{what} must be an array, got {type(value).__name__} "
                             f"({exc})") from None
    if arr.shape != tuple(shape) or arr.dtype.kind not in "fiu":
        raise ParameterError(f"{what} has shape {arr.shape} and dtype {arr.dtype}; this model "
                             f"needs {tuple(shape)} of real numbers")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{what} holds NaN or infinite values")
    return arr.astype(dtype, copy=False)


def _load_policy(agent, given, exact_match, new):
    """The policy's tensors of ``given`` into the flat vectors of ``new`` (copies of the
    agent's state): every name the policy has, with exact_match; any of them, without."""
    if not isinstance(given, dict):
        raise ValueError(f"parameters['policy'] must be a dict of arrays (a state dict), got "
                         f"{type(given).__name__}")
    nets = _networks(agent)
    names = {f"{prefix}.{2 * l}.{part}": (name, sizes, l, part)
             for prefix, name, sizes in nets
             for l in range(len(sizes) - 1) for part in ("weight", "bias")}
    unknown = [k for k in given if k not in names]
    if unknown:
        raise ParameterError(f"parameters['policy'] has names this model's policy has not: "
                             f"{unknown[:5]}; its names are {list(names)[:4]} ... "
                             f"(model.policy.state_dict())")
    missing = [k for k in names if k not in given]
    if exact_match and missing:
        raise ParameterError(f"parameters['policy'] lacks {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''} (exact_match=True: every "
                             "tensor of the policy must be given)")
    for key, value in given.items():
        name, sizes, l, part = names[key]
        w, shape, b = layer_slices(sizes)[l]
        flat = new[name]
        if part == "weight":
            arr = _array(f"parameters['policy'][{key!r}]", value, shape[::-1], flat.dtype)
            flat[w] = arr.T.reshape(-1)
        else:
            flat[b] = _array(f"parameters['policy'][{key!r}]", value, (shape[1],), flat.dtype)


def _load_optimizer(agent, name, given, new):
    """torch.optim.Adam's state dict ``given`` of SB3's ``name`` into ``new``'s moments and
    step count."""
    where = f"parameters[{name!r}]"
    if not isinstance(given, dict) or set(given) != {"state", "param_groups"}:
        raise ValueError(f"{where} must be torch.optim.Adam's state_dict() (a dict of 'state' "
                         f"and 'param_groups'), got {_keys(given)}")
    nets, counter, _ = _optimizers(agent)[name]
    shapes = [s for _, _, sizes in nets for s in _shapes(sizes)]
    groups = given["param_groups"]
    if not (isinstance(groups, (list, tuple)) and len(groups) == 1
            and isinstance(groups[0], dict)):
        raise ValueError(f"{where}['param_groups'] must be one group (a list of one dict), got "
                         f"{groups!r}")
    group = groups[0]
    if list(group.get("params", ())) != list(range(len(shapes))):
        raise ValueError(f"{where}['param_groups'][0]['params'] must be {list(range(len(shapes)))}"
                         f" (one index per tensor of the network(s)), got {group.get('params')!r}")
    for key, value in _adam_group(agent).items():
        if key in group and _plain(group[key]) != _plain(value):
            raise ValueError(f"{where}['param_groups'][0][{key!r}]={group[key]!r}: this "
                             f"model's Adam has {key}={value!r} (a hyperparameter: "
                             "policy_kwargs' optimizer_kwargs)")
    state = given["state"]
    if not isinstance(state, dict) or (state and set(state) != set(range(len(shapes)))):
        raise ValueError(f"{where}['state'] must be empty (no step yet) or hold an entry for "
                         f"each of the {len(shapes)} tensors (0 .. {len(shapes) - 1}), got "
                         f"keys {_keys(state)}")
    steps = set()
    moments = {"exp_avg": [], "exp_avg_sq": []}
    for i, shape in enumerate(shapes):
        entry = state.get(i, {"step": 0, "exp_avg": np.zeros(shape),
                              "exp_avg_sq": np.zeros(shape)})
        if not isinstance(entry, dict) or set(entry) != {"step", "exp_avg", "exp_avg_sq"}:
            raise ValueError(f"{where}['state'][{i}] must hold 'step', 'exp_avg' and "
                             f"'exp_avg_sq', got {_keys(entry)}")
        steps.add(float(_array(f"{where}['state'][{i}]['step']", entry["step"], (), np.float64)))
        for key in moments:
            moments[key].append(_array(f"{where}['state'][{i}][{key!r}]", entry[key], shape,
                                       np.float64))
    step = steps.pop() if len(steps) == 1 else -1.0
    if not (step >= 0 and step.is_integer()):
        raise ValueError(f"{where}['state'] steps {sorted(steps | {step})}: numddpg's Adam "
                         "takes one whole number of steps, the same for every tensor")
    tensor = 0                         # the index of a network's first tensor
    for m_name, v_name, sizes in nets:
        for l, (w, _, b) in enumerate(layer_slices(sizes)):
            for key, flat_name in (("exp_avg", m_name), ("exp_avg_sq", v_name)):
                new[flat_name][w] = moments[key][tensor + 2 * l].T.reshape(-1)
                new[flat_name][b] = moments[key][tensor + 2 * l + 1]
        tensor += 2 * (len(sizes) - 1)
    new["counters"][agent.counter_names.index(counter)] = int(step)


def _plain(value):
    """A param_group value as plain Python (tuples and lists alike, NumPy scalars as floats)."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return float(value) if isinstance(value, (int, float, np.number)) and \
        not isinstance(value, bool) else value


def _keys(obj):
    return sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__


def set_parameters(agent, params, exact_match=True):
    """Put ``params`` (a dict as ``parameters`` returns, or part of one) into ``agent`` in
    place, after checking all of it (nothing changes if any part is refused).

    exact_match : True: every object of OBJECTS and every tensor of the policy must be given;
        False: those given replace their own.
    Raises ValueError for an unknown object, a missing object (exact_match) or a malformed
    optimizer dict, and ParameterError (also a RuntimeError, as torch's) for a policy tensor
    that is unknown, missing (exact_match) or of the wrong shape.
    """
    if not isinstance(params, dict):
        raise ValueError(f"parameters must be a dict as get_parameters() returns, got "
                         f"{type(params).__name__}")
    unknown = [k for k in params if k not in OBJECTS]
    if unknown:
        raise ValueError(f"parameters has objects this model has not: {unknown}; its are "
                         f"{list(OBJECTS)}")
    if exact_match and set(params) != set(OBJECTS):
        raise ValueError(f"parameters lacks {[k for k in OBJECTS if k not in params]} "
                         f"(exact_match=True: {list(OBJECTS)} must all be given)")
    new = agent.state_dict()
    if "policy" in params:
        _load_policy(agent, params["policy"], exact_match, new)
    for name in OBJECTS[1:]:
        if name in params:
            _load_optimizer(agent, name, params[name], new)
    agent.load_state_dict(new)


def load_policy_state_dict(agent, state, strict=True):
    """The policy's ``load_state_dict``: ``state`` (as ``policy_state_dict`` returns, or part
    of it when not ``strict``) into ``agent``'s networks and targets, checked first."""
    new = agent.state_dict()
    _load_policy(agent, state, strict, new)
    agent.load_state_dict(new)
