"""A run's files as records: what OffPolicyAlgorithm.save writes into a run checkpoint, and
every check made of it (and of a run directory's config.json) before anything is read, plus
``export_policy``.

The loop saves and restores its own state (numddpg.algorithms: ``OffPolicyAlgorithm.save`` and
``_restore``); this module states what a valid record is, so that a file from anyone is refused
before it allocates, imports or loads anything (numddpg.checkpoint is the container).
"""
import math
import re
from pathlib import Path

import numpy as np

from ..engine.agents import agent_array_specs, agent_from_arrays, check_agent_meta, load_agent
from ..engine.buffer import ReplayBuffer
from ..engine.hyperparameters import TABLES, whole_as_json
from ..engine.normalizer import ObsNormalizer
from ..files import checkpoint as _checkpoint
from ..files import policy as _policy_file
from ..files.checkpoint import CheckpointError, is_int, is_number
from .envs import EnvError, check_env_record, make_from_record, make_recorded_env, split_module

POLICY_FILE = "policy.npz"
CHECKPOINT_FILE = "checkpoint.npz"
STATS_ARRAY = "epoch.update_stats"    # TD3's loss_pi is NaN on updates without an actor step



def finite_or_none(x):
    """x as a float for a JSON record, or None if it is NaN or infinite (JSON has neither)."""
    x = float(x)
    return x if math.isfinite(x) else None


def plain(v):
    """JSON-able copy: tuples -> lists, numpy scalars -> Python numbers."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def run_checkpoint_specs(meta, where):
    """The array table an algorithm record promises, after checking the record's fields."""
    cfg = check_agent_meta(meta, where)
    specs = agent_array_specs(cfg, "agent.")

    def section(name, fields):
        sec = meta.get(name)
        if not isinstance(sec, dict) or any(f not in sec for f in fields):
            raise CheckpointError(f"{where}: metadata section {name!r} must hold {fields}, got "
                                  f"{sec!r}")
        return sec

    def count(sec, key, name, allow_none=False, bits=63):
        v = sec[key]
        if not ((allow_none and v is None) or (is_int(v) and 0 <= v < 2**bits)):
            raise CheckpointError(f"{where}: {name}.{key}={v!r} must be an integer from 0 to "
                                  f"2**{bits} - 1")
        return v

    sp = section("spaces", ("obs_dim", "act_dim", "act_low", "act_high", "act_dtype"))
    if not (is_int(sp["obs_dim"]) and is_int(sp["act_dim"])) or (
            (sp["obs_dim"], sp["act_dim"]) != (cfg["obs_dim"], cfg["act_dim"])):
        raise CheckpointError(f"{where}: spaces (obs_dim={sp['obs_dim']}, act_dim="
                              f"{sp['act_dim']}) disagree with the agent config "
                              f"({cfg['obs_dim']}, {cfg['act_dim']})")
    if sp["act_dtype"] not in ("float16", "float32", "float64"):
        raise CheckpointError(f"{where}: spaces.act_dtype {sp['act_dtype']!r} is not a float type")
    loop = section("loop", ("t", "epoch", "episodes", "epoch_t0", "elapsed", "last_test_return",
                            "episode_seed", "episode_in_progress"))
    for key in ("t", "epoch", "episodes", "epoch_t0"):
        count(loop, key, "loop")
    count(loop, "episode_seed", "loop", allow_none=True, bits=31)   # drawn as integers(2**31)
    if loop["epoch_t0"] > loop["t"]:
        raise CheckpointError(f"{where}: loop.epoch_t0={loop['epoch_t0']} is after "
                              f"loop.t={loop['t']}")
    if not (is_number(loop["elapsed"]) and loop["elapsed"] >= 0):
        raise CheckpointError(f"{where}: loop.elapsed={loop['elapsed']!r} must be a number >= 0")
    if not (loop["last_test_return"] is None or is_number(loop["last_test_return"])):
        raise CheckpointError(f"{where}: loop.last_test_return={loop['last_test_return']!r}")
    if not isinstance(loop["episode_in_progress"], bool) or (
            loop["episode_in_progress"] and loop["episode_seed"] is not None):
        raise CheckpointError(f"{where}: loop.episode_in_progress="
                              f"{loop['episode_in_progress']!r} with episode_seed="
                              f"{loop['episode_seed']!r} is contradictory")
    b = section("buffer", ("ptr", "size", "max_size", "dtype", "saved"))
    ptr, size, max_size = (count(b, k, "buffer") for k in ("ptr", "size", "max_size"))
    if not (0 < max_size and size <= max_size and ptr < max_size
            and (size == max_size or ptr == size)):
        raise CheckpointError(f"{where}: buffer ptr={ptr}, size={size}, max_size={max_size} "
                              "cannot describe a ring buffer")
    if b["dtype"] not in ("float32", "float64") or not isinstance(b["saved"], bool):
        raise CheckpointError(f"{where}: buffer dtype={b['dtype']!r}, saved={b['saved']!r}")
    rows = count(section("logger", ("progress_rows",)), "progress_rows", "logger",
                 allow_none=True)
    if rows is not None and rows != loop["epoch"]:
        raise CheckpointError(f"{where}: logger.progress_rows={rows} must equal loop.epoch="
                              f"{loop['epoch']} (one progress row per epoch)")
    if not isinstance(meta.get("env_id"), str) or meta.get("algo") != cfg["algo"]:
        raise CheckpointError(f"{where}: env_id {meta.get('env_id')!r} / algo "
                              f"{meta.get('algo')!r} (the agent's is {cfg['algo']!r})")
    for key in ("env_module", "preset"):
        if not (meta.get(key) is None or (isinstance(meta[key], str) and MODULE.match(meta[key])
                                          if key == "env_module" else isinstance(meta[key], str))):
            raise CheckpointError(f"{where}: {key} {meta[key]!r} must be null or a name")
    if "env" in meta:                  # (files from before env records have none)
        try:
            check_env_record(meta["env"])
        except EnvError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        if meta["env"]["id"] != meta["env_id"]:
            raise CheckpointError(f"{where}: env_id {meta['env_id']!r} is not the env "
                                  f"record's {meta['env']['id']!r}")
    vector = meta.get("vector")
    if vector is not None and not (
            isinstance(vector, dict) and set(vector) == {"num_envs", "mode"}
            and is_int(vector["num_envs"]) and 1 <= vector["num_envs"] <= MAX_ENVS
            and vector["mode"] in ("sync", "async")):
        raise CheckpointError(f"{where}: vector {vector!r} must be null or {{'num_envs': 1.."
                              f"{MAX_ENVS}, 'mode': 'sync' or 'async'}}")
    _check_saved_hyperparameters(meta.get("hyperparameters"), cfg, where)
    _check_generator_state(meta.get("rng"), where)

    o, a = cfg["obs_dim"], cfg["act_dim"]
    if b["saved"]:
        shapes = {"obs": (size, o), "act": (size, a), "rew": (size,), "obs2": (size, o),
                  "done": (size,)}
        specs.update({f"buffer.{k}": (b["dtype"], shapes[k]) for k in ReplayBuffer.FIELDS})
    specs["buffer.rng_state"] = ("uint64", (1,))
    table = meta["arrays"]
    noise_len = table.get("noise.x", {}).get("shape", [0])
    specs["noise.x"] = ("float64", (a,) if noise_len == [a] else (0,))
    k = table.get("epoch.ep_rets", {}).get("shape", [0])[:1] or [0]
    m = table.get(STATS_ARRAY, {}).get("shape", [0])[:1] or [0]
    specs["epoch.ep_rets"] = ("float64", (k[0],))
    specs["epoch.ep_lens"] = ("int64", (k[0],))
    specs[STATS_ARRAY] = ("float64", (m[0], 4))
    if loop["episode_seed"] is not None:
        specs["loop.obs"] = ("float64", (o,))
    if meta["hyperparameters"].get("normalize_obs") is True:
        specs.update({"norm.mean": ("float64", (o,)), "norm.var": ("float64", (o,)),
                      "norm.count": ("float64", (1,))})
    return specs


def read_run_checkpoint(path):
    """(meta, arrays) of an algorithm checkpoint, fully checked (OffPolicyAlgorithm.save)."""
    where = str(path)
    return _checkpoint.read_checkpoint(path, "algorithm",
                                       lambda m: run_checkpoint_specs(m, where),
                                       allow_nonfinite=(STATS_ARRAY,))


MAX_ENVS = 1024             # envs of a vector env a file may ask to rebuild
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")   # a module name


# hyperparameters newer than the format: files written before them lack them (the default holds)
SAVED_SINCE = {"chunks", "gradient_steps", "qf_hidden_sizes"}


def _check_saved_hyperparameters(hp, cfg, where):
    """The record's hyperparameters: exactly the algorithm's names, a seed, and chunks as the
    agent's (or null: calibrated).  Their values are checked again by the constructor."""
    specs = TABLES[cfg["algo"]]
    if not isinstance(hp, dict) or not set(specs) - SAVED_SINCE <= set(hp) <= set(specs):
        names = sorted(set(hp) ^ set(specs)) if isinstance(hp, dict) else hp
        raise CheckpointError(f"{where}: hyperparameters must name exactly the {cfg['algo']} "
                              f"ones (differ: {names!r})")
    bad = [name for name in hp if not whole_as_json(hp[name], specs[name])]
    if bad:
        raise CheckpointError(f"{where}: hyperparameters.{bad[0]} {hp[bad[0]]!r} must be "
                              "written with JSON integers")
    if not (is_int(hp["seed"]) and hp["seed"] >= 0):
        raise CheckpointError(f"{where}: hyperparameters.seed {hp['seed']!r} must be an integer "
                              ">= 0 (a saved run always has its seed)")
    if hp.get("chunks") is not None and not (is_int(hp["chunks"])
                                         and hp["chunks"] == cfg.get("chunks", 1)):
        raise CheckpointError(f"{where}: hyperparameters.chunks {hp['chunks']!r} differs from the "
                              f"agent's {cfg.get('chunks', 1)}")


def _check_generator_state(state, where):
    """A numpy PCG64 ``bit_generator.state`` record, field by field (numpy itself would coerce
    a float or a bool)."""
    def int_in(v, bits):
        return is_int(v) and 0 <= v < 2**bits

    ok = (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32",
                                                     "uinteger"}
          and state["bit_generator"] == "PCG64" and isinstance(state["state"], dict)
          and set(state["state"]) == {"state", "inc"}
          and int_in(state["state"]["state"], 128) and int_in(state["state"]["inc"], 128)
          and state["has_uint32"] in (0, 1) and is_int(state["has_uint32"])
          and int_in(state["uinteger"], 32))
    if not ok:
        raise CheckpointError(f"{where}: rng {state!r} is not a PCG64 generator state (integers "
                              "state, inc < 2**128, has_uint32 0 or 1, uinteger < 2**32)")


def make_saved_env(record, env_module):
    """The env a run checkpoint's or config.json's ``record`` was trained on, rebuilt exactly
    from its env record (files from before env records: from its id)."""
    module = record.get("env_module")
    if "env" in record:
        return make_from_record(record["env"], env_module=env_module, recorded_module=module,
                                vector=record.get("vector"))
    return make_recorded_env(record["env_id"], env_module=env_module, recorded_module=module,
                             vector=record.get("vector"))


def check_run_config(config, run_dir):
    """config.json of a run directory, after checking the fields a resume uses (the file is
    untrusted: its hyperparameters are checked again by the constructor)."""
    where = f"{run_dir}/config.json"
    if config.get("algo") not in TABLES:
        raise CheckpointError(f"{where}: algo {config.get('algo')!r} is not one of "
                              f"{sorted(TABLES)}")
    if not isinstance(config.get("env_id"), str):
        raise CheckpointError(f"{where}: env_id {config.get('env_id')!r} is not an env id")
    if not isinstance(config.get("hyperparameters"), dict):
        raise CheckpointError(f"{where}: 'hyperparameters' must be an object")
    total = config.get("total_steps")
    if not (total is None or (is_int(total) and total > 0)):
        raise CheckpointError(f"{where}: total_steps {total!r} must be a positive integer")
    module = config.get("env_module")
    if not (module is None or isinstance(module, str)):
        raise CheckpointError(f"{where}: env_module {module!r} must be a module name")
    return config


def check_belongs(model, config, path):
    """CheckpointError unless the checkpoint loaded into ``model`` is the run that config.json
    describes (a checkpoint copied in from another run would silently continue that one)."""
    hp = config["hyperparameters"]
    mine = {"algo": model.algo, "env_id": model.env_id, "seed": model.seed,
            "hidden_sizes": list(model.hidden_sizes), "obs_dim": model.obs_dim,
            "act_dim": model.act_dim}
    theirs = {"algo": config["algo"], "env_id": split_module(config["env_id"])[1],
              "seed": hp.get("seed"), "hidden_sizes": hp.get("hidden_sizes"),
              "obs_dim": config.get("obs_dim"), "act_dim": config.get("act_dim")}
    differ = [f"{k} {mine[k]!r} (checkpoint) vs {theirs[k]!r} (config.json)"
              for k in mine if mine[k] != theirs[k]]
    if differ:
        raise CheckpointError(f"{path} does not belong to this run directory: "
                              f"{'; '.join(differ)}. Resume the run it came from, or start a "
                              "new one.")


def export_policy(src, dst):
    """Write the actor of ``src`` as a NumPy-only policy file at ``dst`` (numddpg.policy).

    src: a run directory (its policy.npz, else its checkpoint.npz), a policy file, or an
    agent or algorithm checkpoint.  Returns (dst path, the source file used).
    """
    src = Path(src)
    if src.is_dir():
        candidates = [src / POLICY_FILE, src / CHECKPOINT_FILE]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise CheckpointError(f"{src}: no {POLICY_FILE} or {CHECKPOINT_FILE} in this "
                                  "directory; is it a numddpg run directory?")
        src = found[0]
    where = str(src)
    kind = _checkpoint.read_meta(src)["kind"]
    if kind == "policy":
        p = _policy_file.load_policy(src)
        info = {k: v for k, v in p.meta.items() if k in ("algo", "env_id")}
        path = _policy_file.save_policy(dst, p.params, p.layer_sizes, p.mid, p.half, p.low,
                                        p.high, p.act_dtype, p.obs_norm, **info)
        return path, src
    obs_norm = None
    if kind == "agent":
        agent, info, act_dtype = load_agent(src), {}, "float32"
    elif kind == "algorithm":
        meta, arrays = read_run_checkpoint(src)
        agent = agent_from_arrays(meta["config"], arrays, where, "agent.")
        info = {"algo": meta["algo"], "env_id": meta["env_id"],
                "trained_steps": meta["loop"]["t"]}
        act_dtype = meta["spaces"]["act_dtype"]
        if "norm.mean" in arrays:
            norm = ObsNormalizer(meta["config"]["obs_dim"], meta["hyperparameters"]["obs_clip"])
            norm.restore({k: arrays[f"norm.{k}"] for k in ("mean", "var", "count")})
            obs_norm = (norm.shift, norm.scale, norm.clip[0])
    path = _policy_file.save_policy(dst, agent.actor.params, agent.actor.sizes, agent.mid,
                                    agent.half, agent.act_low, agent.act_high, act_dtype,
                                    obs_norm, **dict(info, algo=agent.algo))
    return path, src
