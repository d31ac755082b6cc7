"""numddpg.files.checkpoint: agent save -> load round trips (bit for bit), atomic writes, and a
loader that meets every damaged or doctored file with one CheckpointError.

Equality here is exact (np.array_equal plus equal dtypes): a checkpoint copies bytes, so any
difference at all is a bug.  The fuzz tests state their property precisely:

* truncation, or any edit that rebuilds the archive (dropped/added/renamed arrays, wrong
  dtypes or shapes, metadata edits, non-finite values, a planted pickle): CheckpointError,
  always, and never anything else;
* flipped bytes: CheckpointError, *or* a load that returns exactly the saved state (a flip in
  a zip field nothing reads, such as a member's modification time, is harmless); never a
  different state and never another exception;
* a planted pickled object array is refused unread: its __reduce__ would create a directory,
  and the tests assert it does not exist (and, as a control, that np.load(allow_pickle=True)
  on the same file *does* create it, so the tripwire works).
"""
import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numddpg.files import checkpoint as ck
from numddpg.engine.agents import AGENT_OPTIONAL_KEYS, DDPGAgent, TD3Agent, load_agent, save_agent
from numddpg.files.checkpoint import CheckpointError

AGENTS = {"ddpg": DDPGAgent, "td3": TD3Agent}


def trained_agent(algo, dtype, seed=3, updates=3):
    """A tiny agent after a few updates, so moments, counters and rng_state are non-trivial."""
    agent = AGENTS[algo](3, 2, [-2.0, -1.0], [2.0, 0.5], hidden_sizes=(8, 6), dtype=dtype,
                         seed=seed)
    r = np.random.default_rng(seed)
    for _ in range(updates):
        B = 5
        agent.update(r.standard_normal((B, 3)), r.uniform(-1, 0.5, (B, 2)), r.standard_normal(B),
                     r.standard_normal((B, 3)), (r.random(B) < 0.2).astype(float))
    return agent


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
        assert np.array_equal(sa[k], sb[k]), k


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["ddpg", "td3"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agent_round_trip_is_bit_identical(tmp_path, algo, dtype):
    agent = trained_agent(algo, dtype)
    path = save_agent(tmp_path / "agent.npz", agent)
    loaded = load_agent(path)
    assert type(loaded) is type(agent)
    assert loaded.config() == agent.config()
    assert_same_state(agent, loaded)
    # The loaded agent continues exactly as the original would: same next update, same stats.
    r = np.random.default_rng(9)
    batch = (r.standard_normal((4, 3)), r.uniform(-1, 0.5, (4, 2)), r.standard_normal(4),
             r.standard_normal((4, 3)), np.zeros(4))
    assert agent.update(*batch) == loaded.update(*batch)
    assert_same_state(agent, loaded)


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_fresh_agent_round_trip_and_equal_bytes(tmp_path, algo):
    """A never-updated agent (zero moments and counters) round trips too, and saving the same
    state twice gives the same bytes (fixed member times: files can be compared with cmp)."""
    agent = AGENTS[algo](2, 1, -1.0, 1.0, hidden_sizes=(4,), seed=0)
    p1 = save_agent(tmp_path / "a.npz", agent)
    p2 = save_agent(tmp_path / "b.npz", load_agent(p1))
    assert_same_state(agent, load_agent(p2))
    assert p1.read_bytes() == p2.read_bytes()


def test_generic_round_trip_of_every_dtype(tmp_path):
    arrays = {"a.f32": np.arange(6, dtype=np.float32).reshape(2, 3),
              "a.f64": np.array([1.5, -0.0, 1e300]), "i": np.array([-3, 2**62], np.int64),
              "u": np.array([2**64 - 1], np.uint64), "b": np.frombuffer(b"xyz", np.uint8),
              "empty": np.zeros((0, 4), np.float32)}
    path = ck.write_checkpoint(tmp_path / "x.npz", arrays, {"kind": "algorithm", "note": "hi"})
    meta, got = ck.read_checkpoint(path)
    assert meta["note"] == "hi" and meta["format_version"] == ck.FORMAT_VERSION
    assert list(got) == list(arrays)
    for k in arrays:
        assert got[k].dtype == arrays[k].dtype and np.array_equal(got[k], arrays[k]), k


def test_write_refuses_objects_and_bad_names(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        ck.write_checkpoint(tmp_path / "x.npz", {"o": np.array([{}], dtype=object)},
                            {"kind": "agent"})
    with pytest.raises(ValueError, match="dotted identifier"):
        ck.write_checkpoint(tmp_path / "x.npz", {"../evil": np.zeros(1)}, {"kind": "agent"})
    assert not (tmp_path / "x.npz").exists()


def test_missing_file_and_wrong_kind(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_agent(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="a directory, not a checkpoint file"):
        load_agent(tmp_path)
    ck.write_checkpoint(tmp_path / "p.npz", {"x": np.zeros(1)}, {"kind": "policy"})
    with pytest.raises(CheckpointError, match="'policy' checkpoint, not the 'agent'"):
        load_agent(tmp_path / "p.npz")


# ---------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------

def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    """A save that dies half-way (here: the array writer raises after two members, and in a
    second case fsync fails) leaves the previous file intact and no temporary file behind."""
    old = trained_agent("ddpg", np.float32, seed=1)
    path = save_agent(tmp_path / "ckpt.npz", old)
    before = path.read_bytes()
    new = trained_agent("ddpg", np.float32, seed=2)

    real_write_array, calls = np.lib.format.write_array, []

    def dying_write_array(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt("simulated crash mid-save")
        return real_write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", dying_write_array)
    with pytest.raises(KeyboardInterrupt):
        save_agent(path, new)
    monkeypatch.setattr(np.lib.format, "write_array", real_write_array)

    def failing_fsync(fd):
        raise OSError("simulated disk failure")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        save_agent(path, new)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
    assert_same_state(old, load_agent(path))
    save_agent(path, new)                   # and a save that completes replaces it
    assert_same_state(new, load_agent(path))


# ---------------------------------------------------------------------------------------------
# Fuzzing the loader
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(agent, path, bytes) of a saved TD3 agent (the agent with the most arrays)."""
    folder = tmp_path_factory.mktemp("ckpt")
    agent = trained_agent("td3", np.float32)
    path = save_agent(folder / "good.npz", agent)
    return agent, path, path.read_bytes()


def npy_bytes(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_array(data):
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def members(path):
    """[(name, bytes)] of a zip archive, in order."""
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def write_zip(path, items):
    with warnings.catch_warnings():            # zipfile warns on the duplicates we plant
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in items:
                zf.writestr(name, data)
    return path


def get_meta(items):
    return json.loads(npy_array(dict(items)["__meta__.npy"]).tobytes())


def meta_bytes(meta):
    return npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8))


def replace(items, name, data):
    return [(n, data if n == name else d) for n, d in items]


class Tripwire:
    """Unpickling an instance creates the directory ``path`` (a visible, harmless effect)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def assert_rejected(path, tripwire=None, match=None):
    with pytest.raises(CheckpointError, match=match) as err:
        load_agent(path)
    assert str(path) in str(err.value)        # the message says where
    if tripwire is not None:
        assert not os.path.exists(tripwire)
    return str(err.value)


@settings(max_examples=60)
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files_are_rejected(saved, tmp_path_factory, cut):
    _, _, data = saved
    path = tmp_path_factory.getbasetemp() / "truncated.npz"
    path.write_bytes(data[:int(cut * len(data))])
    assert_rejected(path)


@settings(max_examples=100)
@given(flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=4))
def test_flipped_bytes_are_rejected_or_harmless(saved, tmp_path_factory, flips):
    agent, _, data = saved
    buf = bytearray(data)
    for where, xor in flips:
        buf[int(where * len(buf))] ^= xor
    path = tmp_path_factory.getbasetemp() / "flipped.npz"
    path.write_bytes(bytes(buf))
    try:
        loaded = load_agent(path)
    except CheckpointError as e:
        assert str(path) in str(e)
        return
    assert_same_state(agent, loaded)


def _array_names(items):
    return [n[:-4] for n, _ in items if n != "__meta__.npy"]


# Each mutation: (items, draw) -> (items, expected message pattern).  They rebuild the zip with
# valid CRCs, so what they test is the validation of content, not zip's own checksums.
def m_drop_member(items, draw):
    name = draw(st.sampled_from(_array_names(items)))
    return [(n, d) for n, d in items if n != name + ".npy"], "missing from the archive"


def m_drop_member_and_entry(items, draw):
    name = draw(st.sampled_from(_array_names(items)))
    meta = get_meta(items)
    del meta["arrays"][name]
    items = [(n, d) for n, d in items if n != name + ".npy"]
    return replace(items, "__meta__.npy", meta_bytes(meta)), "missing from the metadata"


def m_add_member(items, draw):
    extra = draw(st.sampled_from(["extra", "actor2", "agent.actor"]))
    return items + [(extra + ".npy", npy_bytes(np.zeros(3, np.float32)))], "does not list"


def m_add_member_and_entry(items, draw):
    meta = get_meta(items)
    meta["arrays"]["extra"] = {"dtype": "float32", "shape": [3]}
    items = replace(items, "__meta__.npy", meta_bytes(meta))
    return items + [("extra.npy", npy_bytes(np.zeros(3, np.float32)))], "does not have"


def m_rename_member(items, draw):
    name = draw(st.sampled_from(_array_names(items)))
    new = draw(st.sampled_from(["renamed", name + "_x", name.upper()]))
    return [((new + ".npy") if n == name + ".npy" else n, d) for n, d in items], "archive"


def m_rename_member_and_entry(items, draw):
    name = draw(st.sampled_from(_array_names(items)))
    meta = get_meta(items)
    meta["arrays"]["renamed"] = meta["arrays"].pop(name)
    items = [("renamed.npy" if n == name + ".npy" else n, d) for n, d in items]
    return replace(items, "__meta__.npy", meta_bytes(meta)), "metadata"


def m_wrong_dtype(items, draw):
    name = draw(st.sampled_from(_array_names(items)))
    arr = npy_array(dict(items)[name + ".npy"])
    new = draw(st.sampled_from([np.float64, np.float32, np.int64, np.uint64, np.float16]))
    if arr.dtype == new:
        new = np.float16
    both = draw(st.booleans())
    if both and np.dtype(new).name in ck.DTYPES:
        meta = get_meta(items)
        meta["arrays"][name]["dtype"] = np.dtype(new).name
        items = replace(items, "__meta__.npy", meta_bytes(meta))
    with np.errstate(over="ignore", invalid="ignore"):          # float16 overflows: fine here
        return replace(items, name + ".npy", npy_bytes(arr.astype(new))), name


def m_wrong_shape(items, draw):
    name = draw(st.sampled_from(_array_names(items)))
    arr = npy_array(dict(items)[name + ".npy"])
    new = draw(st.sampled_from(["short", "long", "2d"]))
    arr = {"short": arr[:-1], "long": np.concatenate([arr, arr[:1]]),
           "2d": arr.reshape(1, -1)}[new]
    if draw(st.booleans()):
        meta = get_meta(items)
        meta["arrays"][name]["shape"] = list(arr.shape)
        items = replace(items, "__meta__.npy", meta_bytes(meta))
    return replace(items, name + ".npy", npy_bytes(arr)), name


def m_non_finite(items, draw):
    name = draw(st.sampled_from([n for n in _array_names(items)
                                 if n not in ("rng_state", "counters")]))
    arr = npy_array(dict(items)[name + ".npy"]).copy()
    i = draw(st.integers(0, arr.size - 1))
    arr[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return replace(items, name + ".npy", npy_bytes(arr)), "non-finite"


def m_negative_state(items, draw):
    name = draw(st.sampled_from(["counters", "pi_v", "q_v", "q2_v"]))
    arr = npy_array(dict(items)[name + ".npy"]).copy()
    arr[draw(st.integers(0, arr.size - 1))] = -1
    return replace(items, name + ".npy", npy_bytes(arr)), "negative"


def _edit_meta(meta, draw):
    """One edit of the metadata record, and the pattern its error message must contain."""
    cfg = meta["config"]
    edits = {
        "version": lambda: (meta.update(format_version=draw(st.sampled_from([0, 2, 99, "1", 1.0,
                                                                            None, True]))),
                            "format_version"),
        "format": lambda: (meta.update(format=draw(st.sampled_from(["npz", None, 1]))), "format"),
        "no_format": lambda: (meta.pop("format"), "format"),
        "kind": lambda: (meta.update(kind=draw(st.sampled_from(["policy", "algorithm", "x"]))),
                         "kind|checkpoint"),
        "algo": lambda: (cfg.update(algo=draw(st.sampled_from(["ddpg", "sac", None]))), ""),
        "hidden": lambda: (cfg.update(hidden_sizes=draw(st.sampled_from(
            [[8], [8, 7], [6, 8], [], [8, 0], [8, -6], [8.0, 6], "8,6", [True, 6]]))), ""),
        "layer_sizes": lambda: (meta["layer_sizes"]["actor"].__setitem__(
            draw(st.integers(0, 3)), draw(st.integers(1, 20))), "layer sizes|"),
        "dims": lambda: (cfg.update({draw(st.sampled_from(["obs_dim", "act_dim"])):
                                     draw(st.sampled_from([1, 4, 0, -3, 2.5, "3", None]))}), ""),
        "dtype": lambda: (cfg.update(dtype=draw(st.sampled_from(["float64", "float16", "object",
                                                                 None]))), ""),
        "bounds": lambda: (cfg.update(act_low=draw(st.sampled_from(
            [[-2.0], [3.0, -1.0], [-2.0, 1.0], ["a", 0], None, [-2.0, float("nan")]]))),
            "act_low|act_high"),
        "hyper": lambda: (cfg.update({draw(st.sampled_from(["gamma", "polyak", "pi_lr", "q_lr",
                                                            "policy_delay", "noise_clip"])):
                                      draw(st.sampled_from([-1.0, None, "x",
                                                            float("inf")]))}), ""),
        "extra_key": lambda: (cfg.update(surprise=1), "unknown keys"),
        "missing_key": lambda: (cfg.pop(draw(st.sampled_from(sorted(
            k for k in cfg if k not in AGENT_OPTIONAL_KEYS)))), ""),   # (optional: old files)
        "chunks": lambda: (cfg.update(chunks=draw(st.sampled_from(
            [0, -1, 10**9, 2.5, True, "2", None, [2]]))), "chunks"),
        "table": lambda: (meta["arrays"].update({draw(st.sampled_from(sorted(meta["arrays"]))):
                                                 draw(st.sampled_from([
                                                     {"dtype": "object", "shape": [3]},
                                                     {"dtype": "float32"},
                                                     {"dtype": "float32", "shape": [-1]},
                                                     {"dtype": "float32", "shape": "3"},
                                                     [1, 2], None]))}), ""),
        "no_table": lambda: (meta.pop("arrays"), "array table"),
        "config_type": lambda: (meta.update(config=draw(st.sampled_from([None, [], "cfg"]))), ""),
    }
    return edits[draw(st.sampled_from(sorted(edits)))]()[1]


def m_edit_meta(items, draw):
    meta = get_meta(items)
    before = json.dumps(meta, sort_keys=True)
    pattern = _edit_meta(meta, draw)
    if json.dumps(meta, sort_keys=True, default=str) == before:
        meta["format_version"] = 2             # the draw changed nothing: make it an edit
        pattern = "format_version"
    return replace(items, "__meta__.npy", meta_bytes(meta)), pattern


def m_bad_meta_bytes(items, draw):
    raw = draw(st.sampled_from([b"\xff\xfe not utf-8", b"{not json", b"[1, 2]", b"",
                                b"\"a string\"", b"{" * 100000 + b"}" * 100000]))
    if draw(st.booleans()):                    # as a uint8 record, or with the wrong dtype
        data = npy_bytes(np.frombuffer(raw, np.uint8))
    else:
        data = npy_bytes(np.frombuffer(raw[: len(raw) // 4 * 4], np.float32))
    return replace(items, "__meta__.npy", data), ""


def m_drop_meta(items, draw):
    return [(n, d) for n, d in items if n != "__meta__.npy"], "no metadata record"


def m_duplicate_member(items, draw):
    name = draw(st.sampled_from([n for n, _ in items]))
    return items + [(name, dict(items)[name])], "more than once"


def m_not_npy(items, draw):
    data = draw(st.sampled_from([b"hello", b"\x93NUMPY\x03\x00", b"\x93NUMPY\x01\x00\xff\xff",
                                 b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}"]))
    if draw(st.booleans()):
        return items + [("notes.txt", data)], "not an array"
    name = draw(st.sampled_from([n for n, _ in items]))
    return replace(items, name, data), ""


MUTATIONS = [m_drop_member, m_drop_member_and_entry, m_add_member, m_add_member_and_entry,
             m_rename_member, m_rename_member_and_entry, m_wrong_dtype, m_wrong_shape,
             m_non_finite, m_negative_state, m_edit_meta, m_bad_meta_bytes, m_drop_meta,
             m_duplicate_member, m_not_npy]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.__name__[2:])
@settings(max_examples=25)
@given(draw=st.data())
def test_doctored_checkpoints_are_rejected(saved, tmp_path_factory, mutation, draw):
    _, path, _ = saved
    items, pattern = mutation(members(path), draw.draw)
    bad = write_zip(tmp_path_factory.getbasetemp() / f"{mutation.__name__}.npz", items)
    message = assert_rejected(bad)
    assert pattern == "" or any(p in message for p in pattern.split("|")), message


@pytest.mark.parametrize("how", ["replace_member", "extra_member", "extra_listed_as_object",
                                 "replace_listed_as_float"])
def test_planted_pickle_is_refused_unread(saved, tmp_path, how):
    _, path, _ = saved
    tripwire = tmp_path / "tripwire"
    evil = npy_bytes(np.array([Tripwire(tripwire), 1], dtype=object), allow_pickle=True)
    items = members(path)
    meta = get_meta(items)
    if how == "replace_member":
        items = replace(items, "actor.npy", evil)
    elif how == "extra_member":
        items = items + [("evil.npy", evil)]
    elif how == "extra_listed_as_object":
        meta["arrays"]["evil"] = {"dtype": "object", "shape": [2]}
        items = replace(items, "__meta__.npy", meta_bytes(meta)) + [("evil.npy", evil)]
    else:
        meta["arrays"]["evil"] = {"dtype": "float32", "shape": [2]}
        items = replace(items, "__meta__.npy", meta_bytes(meta)) + [("evil.npy", evil)]
    bad = write_zip(tmp_path / "evil.npz", items)
    assert_rejected(bad, tripwire)
    # Control: numpy with pickles allowed does run the payload, so the tripwire can fire.
    with np.load(bad, allow_pickle=True) as z:
        name = "actor" if how == "replace_member" else "evil"
        z[name]
    assert tripwire.is_dir()


def test_error_messages_name_the_array_and_the_problem(saved, tmp_path):
    _, path, _ = saved
    items = members(path)
    arr = npy_array(dict(items)["critic2.npy"]).copy()
    arr[4] = np.nan
    msg = assert_rejected(write_zip(tmp_path / "nan.npz", replace(items, "critic2.npy",
                                                                  npy_bytes(arr))))
    assert "'critic2'" in msg and "index (4,)" in msg and "nan" in msg
    meta = get_meta(items)
    meta["format_version"] = 7
    msg = assert_rejected(write_zip(tmp_path / "v7.npz",
                                    replace(items, "__meta__.npy", meta_bytes(meta))))
    assert "format_version 7" in msg
