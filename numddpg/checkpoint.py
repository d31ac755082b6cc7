"""Checkpoints: flat arrays plus a JSON record in one .npz, written atomically, read defensively.

The file (format_version 1) is a zip archive of .npy members, as ``numpy.savez`` writes it:

    __meta__.npy    uint8 (n,): the metadata record, UTF-8 JSON
    <name>.npy      one array per entry of meta["arrays"], and nothing else

    meta = {"format": "numddpg-checkpoint", "format_version": 1,
            "kind": "agent" | "algorithm" | "policy", "numddpg_version": "0.1.0",
            "arrays": {name: {"dtype": "float32", "shape": [P]}, ...},
            ...the kind's own fields}

    kind "agent"      "config": agent.config() (algo, sizes, bounds, hyperparameters, dtype),
                      "layer_sizes": {"actor": [o, *h, a], "critic": [o + a, *h, 1]};
                      arrays: agent.state_dict() (actor, critic, their targets, Adam moments,
                      rng_state (1,) uint64, counters int64)
    kind "policy"     numddpg.policy: the actor alone (params, mid, half, low, high)
    kind "algorithm"  numddpg.algorithms: an agent (arrays "agent.*"), the replay buffer
                      ("buffer.*"), the loop's generator state and counters (JSON)

Nothing in the format can execute code: arrays are plain numeric dtypes (float32, float64,
int64, uint64, uint8), pickles are never read, and the metadata is JSON.  ``read_checkpoint``
checks, in this order, before trusting anything: the zip directory; the metadata record
(format, version, kind, the array table); that the archive holds exactly the listed arrays;
each member's .npy header against the table (so a forged header cannot make it allocate or
unpickle); the data (zip CRC-32); and that floating-point arrays are finite.  Every failure
is one ``CheckpointError`` naming the file and what is wrong there.

``write_checkpoint`` never leaves a half-written file under the final name: it writes a
temporary file in the same folder, flushes and fsyncs it, then ``os.replace``s it over the
target (atomic on POSIX and Windows), so a crash during a save keeps the previous checkpoint.

This module imports only numpy and the standard library at the top (numddpg.policy builds on
it without numba); the agent functions import the agents when called.
"""
import json
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "numddpg-checkpoint"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
KINDS = ("agent", "algorithm", "policy")
META = "__meta__"
DTYPES = ("float32", "float64", "int64", "uint64", "uint8")
MAX_META_BYTES = 64 << 20                     # a metadata record is JSON; this is generous
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)             # fixed member times: equal contents, equal bytes


class CheckpointError(ValueError):
    """A checkpoint (or policy file) that cannot be read, or does not match what it claims."""


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def _numddpg_version():
    try:
        from . import __version__
    except ImportError:                       # this file loaded on its own (see numddpg.policy)
        return "standalone"
    return __version__


def atomic_write(path, write):
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it to path.

    A crash at any moment leaves either the old file or the new one under ``path``, never a
    mix; the temporary file is removed if ``write`` raises.  Returns path (a Path).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)                   # make the rename itself durable
    return path


_TMP = re.compile(r"^\..+\.(\d+)\.tmp$")


def remove_stale_temporaries(folder):
    """Delete the temporary files that ``atomic_write`` calls left in ``folder`` when their
    process was killed mid-write (".NAME.PID.tmp" whose PID is no longer running).  POSIX only:
    elsewhere nothing is removed.  Returns the paths removed."""
    removed = []
    if os.name != "posix":
        return removed
    for p in Path(folder).iterdir():
        m = _TMP.match(p.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)         # signal 0: only asks whether it exists
            continue
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            continue                            # alive under another user, or not a pid
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:                           # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(path, arrays, meta, allow_nonfinite=()):
    """Write ``arrays`` (name -> ndarray) and the JSON-able dict ``meta`` to ``path`` atomically.

    Adds the envelope fields (format, format_version, numddpg_version, arrays) to a copy of
    meta; meta must name its "kind".  Names are dotted identifiers ("agent.actor"); dtypes must
    be one of DTYPES.  Floating-point arrays must be finite, except those named in
    ``allow_nonfinite``: a NaN is refused here (CheckpointError) rather than replacing a good
    checkpoint with a file that cannot be loaded.  Returns the path.
    """
    if meta.get("kind") not in KINDS:
        raise ValueError(f"meta['kind'] must be one of {KINDS}, got {meta.get('kind')!r}")
    table, items = {}, []
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        if not isinstance(name, str) or not NAME.match(name) or name == META:
            raise ValueError(f"array name {name!r} is not a dotted identifier like 'agent.actor'")
        if arr.dtype.name not in DTYPES:
            raise ValueError(f"array {name!r} has dtype {arr.dtype}; checkpoints hold only "
                             f"{', '.join(DTYPES)}")
        if name not in allow_nonfinite:
            _check_finite(arr, f"{path}: refusing to write array {name!r}, which")
        table[name] = {"dtype": arr.dtype.name, "shape": list(arr.shape)}
        items.append((name, arr))
    record = dict(meta, format=FORMAT, format_version=FORMAT_VERSION,
                  numddpg_version=_numddpg_version(), arrays=table)
    text = json.dumps(record, allow_nan=False, sort_keys=False).encode("utf-8")
    items.insert(0, (META, np.frombuffer(text, np.uint8)))

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in items:
                info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)

    return atomic_write(path, write)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def read_checkpoint(path, kind=None, expect=None, allow_nonfinite=()):
    """(meta, arrays) of the checkpoint at ``path``, after every check of the module docstring.

    kind : the kind the caller needs ("agent", ...), or None for any.
    expect : optional function meta -> {name: (dtype name, shape tuple)} (raising
        CheckpointError itself for a bad record); the metadata's array table must equal it,
        which is checked before any array is read.
    allow_nonfinite : names of float arrays that may hold NaN or inf (statistics, not state).
    Raises CheckpointError, and nothing else, for any file that fails a check.
    """
    return _read(path, kind, expect, allow_nonfinite, read_arrays=True)


def read_meta(path, kind=None):
    """The checked metadata record of the checkpoint at ``path``, without reading its arrays."""
    return _read(path, kind, None, (), read_arrays=False)[0]


def _read(path, kind, expect, allow_nonfinite, read_arrays):
    """_read_zip on the file at ``path``, with every error turned into a CheckpointError."""
    where = str(path)
    try:
        if not Path(path).is_file():
            raise CheckpointError(f"{where}: no such file")
        with zipfile.ZipFile(path) as zf:
            return _read_zip(zf, where, kind, expect, Path(path).stat().st_size,
                             allow_nonfinite, read_arrays)
    except CheckpointError:
        raise
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{where}: not an intact zip archive, so the file is truncated "
                              f"or damaged ({e})") from None
    except Exception as e:                     # OSError, zlib.error, EOFError, ...: all damage
        raise CheckpointError(f"{where}: unreadable checkpoint ({type(e).__name__}: {e})") from None


def _read_zip(zf, where, kind, expect, archive_size, allow_nonfinite, read_arrays):
    infos = zf.infolist()
    names = [i.filename for i in infos]
    for i in infos:                            # stored, as written: sizes bounded by the file's
        if i.compress_type != zipfile.ZIP_STORED or i.compress_size != i.file_size:
            raise CheckpointError(f"{where}: member {i.filename!r} is compressed (method "
                                  f"{i.compress_type}); numddpg writes uncompressed members")
        if i.file_size > archive_size:
            raise CheckpointError(f"{where}: member {i.filename!r} claims {i.file_size} bytes, "
                                  f"more than the whole file ({archive_size})")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CheckpointError(f"{where}: the archive holds {dup[0]!r} more than once")
    by_name = {i.filename: i for i in infos}
    if META + ".npy" not in by_name:
        raise CheckpointError(f"{where}: no metadata record ({META}.npy), so this is not a "
                              f"numddpg checkpoint (members: {sorted(names)[:10]})")
    if by_name[META + ".npy"].file_size > MAX_META_BYTES:
        raise CheckpointError(f"{where}: the metadata record is "
                              f"{by_name[META + '.npy'].file_size} bytes, more than a checkpoint "
                              f"ever writes ({MAX_META_BYTES})")
    meta = _read_meta(zf, by_name[META + ".npy"], where)
    _check_envelope(meta, where, kind)
    table = {name: (spec["dtype"], tuple(spec["shape"])) for name, spec in meta["arrays"].items()}
    if expect is not None:
        want = expect(meta)
        for name in want:
            if name not in table:
                raise CheckpointError(f"{where}: array {name!r} is missing from the metadata's "
                                      "array table")
        for name in table:
            if name not in want:
                raise CheckpointError(f"{where}: the metadata lists array {name!r}, which a "
                                      f"{meta['kind']} checkpoint does not have")
        for name, (dtype, shape) in want.items():
            if table[name] != (dtype, tuple(shape)):
                raise CheckpointError(
                    f"{where}: array {name!r} is listed as {table[name][0]} {table[name][1]}, "
                    f"but this {meta['kind']} needs {dtype} {tuple(shape)} (from its config)")
    members = {n[:-4] for n in names if n.endswith(".npy")} - {META}
    stray = [n for n in names if not n.endswith(".npy")]
    if stray:
        raise CheckpointError(f"{where}: the archive holds {stray[0]!r}, which is not an array")
    for name in table:
        if name not in members:
            raise CheckpointError(f"{where}: array {name!r} listed in the metadata is missing "
                                  "from the archive")
    for name in sorted(members):
        if name not in table:
            raise CheckpointError(f"{where}: the archive holds array {name!r}, which the "
                                  "metadata does not list")
    arrays = {}
    if not read_arrays:
        return meta, arrays
    for name, (dtype, shape) in table.items():
        arrays[name] = _read_member(zf, by_name[name + ".npy"], np.dtype(dtype), shape,
                                    f"{where}: array {name!r}")
        if name not in allow_nonfinite:
            _check_finite(arrays[name], f"{where}: array {name!r}")
    return meta, arrays


def _read_header(f, what):
    """(shape, fortran_order, dtype) from an .npy header, parsed without evaluating code."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    except zipfile.BadZipFile as e:            # zipfile reads ahead: a bad CRC can show here
        raise CheckpointError(f"{what}: damaged bytes in the archive ({e})") from None
    except Exception as e:
        raise CheckpointError(f"{what}: damaged .npy header ({type(e).__name__}: {e})") from None
    raise CheckpointError(f"{what}: unsupported .npy format version {version}")


def _read_member(zf, info, dtype, shape, what):
    """The array in zip member ``info`` after checking its header says ``dtype`` ``shape``
    (C order) and its size is exactly header + data; zipfile checks the CRC at the end."""
    try:
        return _read_member_data(zf, info, dtype, shape, what)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{what}: damaged bytes in the archive ({e})") from None


def _read_member_data(zf, info, dtype, shape, what):
    with zf.open(info) as f:
        got_shape, fortran, got_dtype = _read_header(f, what)
        if got_dtype.hasobject or got_dtype.fields is not None or got_dtype.subdtype is not None:
            raise CheckpointError(f"{what}: holds dtype {got_dtype} (Python objects or records);"
                                  " checkpoints never hold pickled data, so it is refused unread")
        if got_dtype != dtype or tuple(got_shape) != tuple(shape) or fortran:
            raise CheckpointError(f"{what}: the file holds {got_dtype} {tuple(got_shape)}"
                                  f"{' (Fortran order)' if fortran else ''}, the metadata says "
                                  f"{dtype} {tuple(shape)}")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != f.tell() + nbytes:
            raise CheckpointError(f"{what}: member is {info.file_size} bytes, header + data "
                                  f"should be {f.tell() + nbytes}")
        out = np.empty(shape, dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos = 0
        while pos < nbytes:
            n = f.readinto(view[pos:pos + (16 << 20)])
            if not n:
                raise CheckpointError(f"{what}: data ends after {pos} of {nbytes} bytes")
            pos += n
        if f.read(1):                          # also reaches the end, where the CRC is checked
            raise CheckpointError(f"{what}: trailing bytes after the array data")
    return out


def _read_meta(zf, info, where):
    raw = _read_member_any_length(zf, info, f"{where}: metadata record")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{where}: metadata record is not UTF-8 JSON ({e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: metadata record is a JSON {type(meta).__name__}, "
                              "not an object")
    return meta


def _read_member_any_length(zf, info, what):
    with zf.open(info) as f:
        shape, _, dtype = _read_header(f, what)
    if dtype != np.uint8 or len(shape) != 1:
        raise CheckpointError(f"{what}: must be a 1-D uint8 array, the file holds {dtype} "
                              f"{tuple(shape)}")
    return _read_member(zf, info, np.dtype(np.uint8), tuple(shape), what)


def _check_envelope(meta, where, kind):
    fmt = meta.get("format")
    if fmt != FORMAT:
        raise CheckpointError(f"{where}: metadata format is {fmt!r}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if not (_is_int(version) and version in SUPPORTED_VERSIONS):
        raise CheckpointError(f"{where}: format_version {version!r} is not one this numddpg "
                              f"reads ({', '.join(map(str, SUPPORTED_VERSIONS))}); it was written "
                              f"by numddpg {meta.get('numddpg_version')!r}")
    if meta.get("kind") not in KINDS:
        raise CheckpointError(f"{where}: kind {meta.get('kind')!r} is not one of {KINDS}")
    if kind is not None and meta["kind"] != kind:
        raise CheckpointError(f"{where}: this file is a {meta['kind']!r} checkpoint, not the "
                              f"{kind!r} checkpoint needed here")
    table = meta.get("arrays")
    if not isinstance(table, dict):
        raise CheckpointError(f"{where}: metadata has no array table ('arrays')")
    for name, spec in table.items():
        if not NAME.match(name) or name == META:
            raise CheckpointError(f"{where}: array name {name!r} in the metadata is not a "
                                  "dotted identifier")
        if not (isinstance(spec, dict) and set(spec) == {"dtype", "shape"}):
            raise CheckpointError(f"{where}: array {name!r}: metadata entry must be "
                                  f"{{'dtype': ..., 'shape': [...]}}, got {spec!r}")
        if spec["dtype"] not in DTYPES:
            raise CheckpointError(f"{where}: array {name!r}: dtype {spec['dtype']!r} is not one "
                                  f"of {DTYPES}")
        shape = spec["shape"]
        if not (isinstance(shape, list) and all(_is_int(s) and s >= 0 for s in shape)):
            raise CheckpointError(f"{where}: array {name!r}: shape {shape!r} is not a list of "
                                  "non-negative integers")


def _check_finite(arr, what):
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise CheckpointError(f"{what} has a non-finite value {arr[bad]} at index {bad}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------

AGENT_CONFIG_KEYS = {
    "ddpg": ("algo", "obs_dim", "act_dim", "act_low", "act_high", "hidden_sizes", "gamma",
             "polyak", "pi_lr", "q_lr", "dtype"),
}
AGENT_CONFIG_KEYS["td3"] = AGENT_CONFIG_KEYS["ddpg"] + ("target_noise", "noise_clip",
                                                        "policy_delay")
# Optional keys: files written before they existed load with the default (1 chunk: the serial
# update, which they ran).  MAX_CHUNKS bounds what a file may ask to allocate per network.
AGENT_OPTIONAL_KEYS = {"chunks": 1}


def agent_classes():
    from .agents import DDPGAgent, TD3Agent
    return {"ddpg": DDPGAgent, "td3": TD3Agent}


def check_agent_config(cfg, where):
    """Raise CheckpointError unless ``cfg`` is a well-formed agent.config() record."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: agent config must be a JSON object, got {cfg!r}")
    algo = cfg.get("algo")
    if algo not in AGENT_CONFIG_KEYS:
        raise CheckpointError(f"{where}: agent algo {algo!r} is not one of "
                              f"{sorted(AGENT_CONFIG_KEYS)}")
    keys = AGENT_CONFIG_KEYS[algo]
    missing = [k for k in keys if k not in cfg]
    extra = [k for k in cfg if k not in keys and k not in AGENT_OPTIONAL_KEYS]
    if missing or extra:
        raise CheckpointError(f"{where}: {algo} agent config is missing {missing} / has unknown "
                              f"keys {extra}")

    def need(ok, key, what):
        if not ok:
            raise CheckpointError(f"{where}: agent config {key}={cfg[key]!r} must be {what}")

    for key in ("obs_dim", "act_dim"):
        need(_is_int(cfg[key]) and cfg[key] > 0, key, "a positive integer")
    h = cfg["hidden_sizes"]
    need(isinstance(h, list) and len(h) > 0 and all(_is_int(s) and s > 0 for s in h),
         "hidden_sizes", "a non-empty list of positive integers")
    need(cfg["dtype"] in ("float32", "float64"), "dtype", "'float32' or 'float64'")
    for key in ("act_low", "act_high"):
        v = cfg[key]
        need(isinstance(v, list) and len(v) == cfg["act_dim"] and all(map(_is_number, v)),
             key, f"a list of act_dim={cfg['act_dim']} finite numbers")
    need(all(lo < hi for lo, hi in zip(cfg["act_low"], cfg["act_high"])), "act_low",
         f"below act_high={cfg['act_high']} in every dimension")
    for key in ("gamma", "polyak", "pi_lr", "q_lr") + (
            ("target_noise", "noise_clip") if algo == "td3" else ()):
        need(_is_number(cfg[key]), key, "a finite number")
    if algo == "td3":
        need(_is_int(cfg["policy_delay"]) and cfg["policy_delay"] > 0, "policy_delay",
             "a positive integer")
    if "chunks" in cfg:
        from .checks import MAX_CHUNKS      # (here: a policy file alone needs no package module)
        need(_is_int(cfg["chunks"]) and 1 <= cfg["chunks"] <= MAX_CHUNKS, "chunks",
             f"an integer from 1 to {MAX_CHUNKS}")


def agent_layer_sizes(cfg):
    """{"actor": [o, *h, a], "critic": [o + a, *h, 1]} of an agent config."""
    o, a, h = cfg["obs_dim"], cfg["act_dim"], list(cfg["hidden_sizes"])
    return {"actor": [o, *h, a], "critic": [o + a, *h, 1]}


def _n_params(sizes):
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def agent_array_specs(cfg, prefix=""):
    """{prefix + name: (dtype, shape)} of the arrays in a state_dict of an agent with ``cfg``."""
    sizes = agent_layer_sizes(cfg)
    p_pi, p_q, dt = _n_params(sizes["actor"]), _n_params(sizes["critic"]), cfg["dtype"]
    nets = {"actor": p_pi, "critic": p_q, "actor_targ": p_pi, "critic_targ": p_q,
            "pi_m": p_pi, "pi_v": p_pi, "q_m": p_q, "q_v": p_q}
    if cfg["algo"] == "td3":
        nets.update(critic2=p_q, critic2_targ=p_q, q2_m=p_q, q2_v=p_q)
    specs = {prefix + name: (dt, (n,)) for name, n in nets.items()}
    specs[prefix + "rng_state"] = ("uint64", (1,))
    specs[prefix + "counters"] = ("int64", (3 if cfg["algo"] == "td3" else 2,))
    return specs


def check_agent_meta(meta, where, cfg_key="config", sizes_key="layer_sizes"):
    """Check the agent config and layer sizes in ``meta``; return the config."""
    cfg = meta.get(cfg_key)
    check_agent_config(cfg, where)
    sizes = meta.get(sizes_key)
    want = agent_layer_sizes(cfg)
    if sizes != want:
        raise CheckpointError(f"{where}: layer sizes {sizes!r} are inconsistent with the agent "
                              f"config (obs_dim={cfg['obs_dim']}, act_dim={cfg['act_dim']}, "
                              f"hidden_sizes={cfg['hidden_sizes']}), which gives {want}")
    return cfg


def agent_arrays(agent, prefix=""):
    """agent.state_dict() with names prefixed (for a checkpoint's array table)."""
    return {prefix + k: v for k, v in agent.state_dict().items()}


def agent_state(arrays, where, prefix=""):
    """The state_dict held in ``arrays`` under ``prefix``, after checking that step counts and
    Adam second moments are non-negative."""
    state = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    if np.any(state["counters"] < 0):
        raise CheckpointError(f"{where}: array {prefix + 'counters'!r} holds a negative step "
                              f"count {state['counters'].tolist()}")
    for name in ("pi_v", "q_v", "q2_v"):
        if name in state and np.any(state[name] < 0):
            raise CheckpointError(f"{where}: array {prefix + name!r} (an Adam second moment) "
                                  "has a negative entry")
    return state


def agent_from_arrays(cfg, arrays, where, prefix=""):
    """A new agent built from ``cfg`` (checked) holding the state in ``arrays`` (checked)."""
    state = agent_state(arrays, where, prefix)
    cls = agent_classes()[cfg["algo"]]
    kwargs = {k: v for k, v in cfg.items() if k not in ("algo", "obs_dim", "act_dim", "act_low",
                                                         "act_high")}
    kwargs["dtype"] = np.dtype(kwargs["dtype"])
    kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
    try:
        agent = cls(cfg["obs_dim"], cfg["act_dim"], cfg["act_low"], cfg["act_high"], seed=0,
                    **kwargs)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: {cls.__name__} refuses the saved config: {e}") from None
    try:
        agent.load_state_dict(state)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    return agent


def save_agent(path, agent):
    """Save a DDPGAgent/TD3Agent (networks, targets, Adam state, generator, counters)."""
    cfg = agent.config()
    meta = {"kind": "agent", "algo": cfg["algo"], "config": cfg,
            "layer_sizes": agent_layer_sizes(cfg)}
    return write_checkpoint(path, agent_arrays(agent), meta)


def load_agent(path):
    """The agent saved by ``save_agent`` at ``path``, bit for bit; CheckpointError otherwise."""
    where = str(path)
    meta, arrays = read_checkpoint(
        path, "agent", lambda m: agent_array_specs(check_agent_meta(m, where)))
    return agent_from_arrays(meta["config"], arrays, where)


# ---------------------------------------------------------------------------------------------
# Algorithms (the training loop of numddpg.algorithms): everything needed for an exact resume
# ---------------------------------------------------------------------------------------------

CHECKPOINT_FILE = "checkpoint.npz"
BUFFER_FIELDS = ("obs", "act", "rew", "obs2", "done")
STATS_ARRAY = "epoch.update_stats"            # TD3's loss_pi is NaN on updates without an actor step


def save_algorithm(path, model, include_buffer=True, elapsed=None):
    """Save the whole state of an OffPolicyAlgorithm ``model`` to ``path`` (kind "algorithm").

    Arrays: the agent's state_dict ("agent.*"), the filled replay rows ("buffer.*", unless
    include_buffer is False), the buffer's sampler state, the OU noise state ("noise.x"), and
    the current epoch's accumulators ("epoch.*").  JSON: algo, env, hyperparameters, the agent
    config and layer sizes, the loop generator's ``bit_generator.state``, the loop counters,
    the buffer's ptr/size, the number of progress.csv rows written, and the current episode:
    at an episode boundary (ep_len 0) its reset seed and first observation, which is all an
    exact resume needs; elsewhere only a note that an episode was in progress (loading such a
    file starts a new episode, so it is not an exact resume).
    """
    agent, buf = model.agent, model.buffer
    cfg = agent.config()
    n = buf.size
    arrays = agent_arrays(agent, "agent.")
    if include_buffer:
        arrays.update({f"buffer.{k}": getattr(buf, k)[:n] for k in BUFFER_FIELDS})
    arrays["buffer.rng_state"] = buf.rng_state
    arrays["noise.x"] = np.asarray(getattr(model.noise_process, "x", np.zeros(0)), np.float64)
    arrays["epoch.ep_rets"] = np.asarray(model._ep_rets, np.float64)
    arrays["epoch.ep_lens"] = np.asarray(model._ep_lens, np.int64)
    arrays[STATS_ARRAY] = (np.concatenate(model._update_stats) if model._update_stats
                           else np.zeros((0, 4), np.float64))
    at_boundary = model.obs is not None and model.ep_len == 0
    if at_boundary:
        arrays["loop.obs"] = np.asarray(model.obs, np.float64)
    last = model.last_test_return
    meta = {
        "kind": "algorithm", "algo": model.algo, "env_id": model.env_id,
        "preset": model.preset_name, "hyperparameters": _plain(model.hyperparameters),
        "config": cfg, "layer_sizes": agent_layer_sizes(cfg),
        "spaces": {"obs_dim": model.obs_dim, "act_dim": model.act_dim,
                   "act_low": model.act_low.tolist(), "act_high": model.act_high.tolist(),
                   "act_dtype": np.dtype(model.env.action_space.dtype).name},
        "rng": _plain(model.rng.bit_generator.state),
        "loop": {"t": model.t, "epoch": model.epoch, "episodes": model.episodes,
                 "epoch_t0": model._epoch_t0,
                 "elapsed": float(model.elapsed if elapsed is None else elapsed),
                 "last_test_return": None if math.isnan(last) else float(last),
                 "episode_seed": int(model._ep_seed) if at_boundary else None,
                 "episode_in_progress": bool(model.obs is not None and model.ep_len > 0)},
        "buffer": {"ptr": buf.ptr, "size": n, "max_size": buf.max_size, "dtype": buf.dtype.name,
                   "saved": bool(include_buffer)},
        "logger": {"progress_rows": model.epoch if model._csv is not None else None},
    }
    return write_checkpoint(path, arrays, meta, allow_nonfinite=(STATS_ARRAY,))


def _plain(v):
    """JSON-able copy: tuples -> lists, numpy scalars -> Python numbers."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _algorithm_specs(meta, where):
    """The array table an algorithm record promises, after checking the record's fields."""
    cfg = check_agent_meta(meta, where)
    specs = agent_array_specs(cfg, "agent.")

    def section(name, fields):
        sec = meta.get(name)
        if not isinstance(sec, dict) or any(f not in sec for f in fields):
            raise CheckpointError(f"{where}: metadata section {name!r} must hold {fields}, got "
                                  f"{sec!r}")
        return sec

    def count(sec, key, name, allow_none=False):
        v = sec[key]
        if not ((allow_none and v is None) or (_is_int(v) and v >= 0)):
            raise CheckpointError(f"{where}: {name}.{key}={v!r} must be a non-negative integer")
        return v

    sp = section("spaces", ("obs_dim", "act_dim", "act_low", "act_high", "act_dtype"))
    if (sp["obs_dim"], sp["act_dim"]) != (cfg["obs_dim"], cfg["act_dim"]):
        raise CheckpointError(f"{where}: spaces (obs_dim={sp['obs_dim']}, act_dim="
                              f"{sp['act_dim']}) disagree with the agent config "
                              f"({cfg['obs_dim']}, {cfg['act_dim']})")
    if sp["act_dtype"] not in ("float16", "float32", "float64"):
        raise CheckpointError(f"{where}: spaces.act_dtype {sp['act_dtype']!r} is not a float type")
    loop = section("loop", ("t", "epoch", "episodes", "epoch_t0", "elapsed", "last_test_return",
                            "episode_seed", "episode_in_progress"))
    for key in ("t", "epoch", "episodes", "epoch_t0"):
        count(loop, key, "loop")
    count(loop, "episode_seed", "loop", allow_none=True)
    if loop["epoch_t0"] > loop["t"]:
        raise CheckpointError(f"{where}: loop.epoch_t0={loop['epoch_t0']} is after "
                              f"loop.t={loop['t']}")
    if not (_is_number(loop["elapsed"]) and loop["elapsed"] >= 0):
        raise CheckpointError(f"{where}: loop.elapsed={loop['elapsed']!r} must be a number >= 0")
    if not (loop["last_test_return"] is None or _is_number(loop["last_test_return"])):
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
    count(section("logger", ("progress_rows",)), "progress_rows", "logger", allow_none=True)
    if not isinstance(meta.get("hyperparameters"), dict) or not isinstance(meta.get("rng"), dict):
        raise CheckpointError(f"{where}: metadata needs 'hyperparameters' and 'rng' objects")
    if not isinstance(meta.get("env_id"), str) or meta.get("algo") != cfg["algo"]:
        raise CheckpointError(f"{where}: env_id {meta.get('env_id')!r} / algo "
                              f"{meta.get('algo')!r} (the agent's is {cfg['algo']!r})")

    o, a = cfg["obs_dim"], cfg["act_dim"]
    if b["saved"]:
        shapes = {"obs": (size, o), "act": (size, a), "rew": (size,), "obs2": (size, o),
                  "done": (size,)}
        specs.update({f"buffer.{k}": (b["dtype"], shapes[k]) for k in BUFFER_FIELDS})
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
    return specs


def read_algorithm(path):
    """(meta, arrays) of an algorithm checkpoint, fully checked (see save_algorithm)."""
    where = str(path)
    return read_checkpoint(path, "algorithm", lambda m: _algorithm_specs(m, where),
                           allow_nonfinite=(STATS_ARRAY,))


def restore_algorithm(model, meta, arrays, where="checkpoint"):
    """Put the state read by ``read_algorithm`` into ``model``, an OffPolicyAlgorithm built
    with the same hyperparameters on an env with the same spaces.  Raises CheckpointError if
    they differ.  With a saved episode boundary, the env is reset with the saved seed (the
    first observation must come out equal, else a RuntimeWarning says the resume is inexact)."""
    import warnings

    cfg, sp = meta["config"], meta["spaces"]
    if model.algo != meta["algo"]:
        raise CheckpointError(f"{where}: a {meta['algo']} checkpoint cannot be loaded into "
                              f"{type(model).__name__} ({model.algo})")
    if model.agent.config() != {**AGENT_OPTIONAL_KEYS, **cfg}:
        raise CheckpointError(f"{where}: the saved agent config {cfg} differs from the one the "
                              f"saved hyperparameters build here: {model.agent.config()}")
    if ((model.obs_dim, model.act_dim) != (sp["obs_dim"], sp["act_dim"])
            or model.act_low.tolist() != sp["act_low"] or model.act_high.tolist() != sp["act_high"]):
        raise CheckpointError(f"{where}: saved for spaces obs_dim={sp['obs_dim']}, act_dim="
                              f"{sp['act_dim']}, bounds {sp['act_low']}..{sp['act_high']}; "
                              f"the env {model.env_id} has {model.obs_dim}, {model.act_dim}, "
                              f"{model.act_low.tolist()}..{model.act_high.tolist()}")
    b = meta["buffer"]
    if (b["max_size"], b["dtype"]) != (model.buffer.max_size, model.buffer.dtype.name):
        raise CheckpointError(f"{where}: buffer max_size={b['max_size']} dtype={b['dtype']} "
                              f"differs from this model's {model.buffer.max_size} "
                              f"{model.buffer.dtype.name}")
    noise_x = arrays["noise.x"]
    if noise_x.shape != np.shape(getattr(model.noise_process, "x", np.zeros(0))):
        raise CheckpointError(f"{where}: noise state has shape {noise_x.shape}, this model's "
                              f"{type(model.noise_process).__name__} has none of that shape")
    try:
        model.rng.bit_generator.state = meta["rng"]
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise CheckpointError(f"{where}: the loop generator's saved state is unusable: "
                              f"{type(e).__name__}: {e}") from None
    model.agent.load_state_dict(agent_state(arrays, where, "agent."))

    buf = model.buffer
    for k in BUFFER_FIELDS:
        getattr(buf, k)[...] = 0
    if b["saved"]:
        for k in BUFFER_FIELDS:
            getattr(buf, k)[:b["size"]] = arrays[f"buffer.{k}"]
        buf.ptr, buf.size = b["ptr"], b["size"]
    else:
        buf.ptr, buf.size = 0, 0
        if b["size"]:
            warnings.warn(f"{where} was saved without its replay buffer: training resumes "
                          f"with an empty buffer (it held {b['size']} transitions), so the "
                          "resumed run differs from an uninterrupted one", RuntimeWarning,
                          stacklevel=3)
    buf.rng_state[...] = arrays["buffer.rng_state"]
    if noise_x.size:
        model.noise_process.x[...] = noise_x

    loop = meta["loop"]
    model.t, model.epoch, model.episodes = loop["t"], loop["epoch"], loop["episodes"]
    model.elapsed = loop["elapsed"]
    model.last_test_return = (math.nan if loop["last_test_return"] is None
                              else loop["last_test_return"])
    model._new_epoch_accumulators()
    model._epoch_t0 = loop["epoch_t0"]
    model._ep_rets = arrays["epoch.ep_rets"].tolist()
    model._ep_lens = arrays["epoch.ep_lens"].tolist()
    model._update_stats = [arrays[STATS_ARRAY]] if len(arrays[STATS_ARRAY]) else []
    model.ep_ret, model.ep_len = 0.0, 0
    model.obs = None                          # an episode in progress is dropped: a new one starts
    if loop["episode_seed"] is not None:      # an episode boundary: redo its reset exactly
        obs, _ = model.env.reset(seed=loop["episode_seed"])
        model.noise_process.reset()
        model._ep_seed = loop["episode_seed"]
        model.obs = obs
        if not np.array_equal(np.asarray(obs, np.float64), arrays["loop.obs"]):
            warnings.warn(f"{model.env_id}.reset(seed={loop['episode_seed']}) gave a different "
                          "first observation than when the checkpoint was saved: the env's "
                          "reset is not reproducible, so this resume is not exact",
                          RuntimeWarning, stacklevel=3)
    return model


def export_policy(src, dst):
    """Write the actor of ``src`` as a NumPy-only policy file at ``dst`` (numddpg.policy).

    src: a run directory (its policy.npz, else its checkpoint.npz), a policy file, or an
    agent or algorithm checkpoint.  Returns (dst path, the source file used).
    """
    from . import policy as _policy

    src = Path(src)
    if src.is_dir():
        candidates = [src / _policy.POLICY_FILE, src / CHECKPOINT_FILE]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise CheckpointError(f"{src}: no {_policy.POLICY_FILE} or {CHECKPOINT_FILE} in this "
                                  "directory; is it a numddpg run directory?")
        src = found[0]
    where = str(src)
    kind = read_meta(src)["kind"]
    if kind == "policy":
        p = _policy.load_policy(src)
        info = {k: v for k, v in p.meta.items() if k in ("algo", "env_id")}
        path = _policy.save_policy(dst, p.params, p.layer_sizes, p.mid, p.half, p.low, p.high,
                                   p.act_dtype, **info)
        return path, src
    if kind == "agent":
        agent, info, act_dtype = load_agent(src), {}, "float32"
    elif kind == "algorithm":
        meta, arrays = read_algorithm(src)
        agent = agent_from_arrays(meta["config"], arrays, where, "agent.")
        info = {"algo": meta["algo"], "env_id": meta["env_id"], "trained_steps": meta["loop"]["t"]}
        act_dtype = meta["spaces"]["act_dtype"]
    path = _policy.save_policy(dst, agent.actor.params, agent.actor.sizes, agent.mid, agent.half,
                               agent.act_low, agent.act_high, act_dtype,
                               **dict(info, algo=agent.algo))
    return path, src
