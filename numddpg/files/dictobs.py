"""Dict observations as one flat vector: a Dict space whose entries are Boxes, laid end to end.

The networks read one vector s of obs_dim numbers.  A Dict observation {key: array} becomes
that vector by concatenating its entries, each flattened in C order, **in sorted key order**,
as gymnasium's ``spaces.flatten`` and Stable-Baselines3 do; a goal env's three entries thus
come as

    s = [ achieved_goal | desired_goal | observation ]            (obs_dim,)

``DictLayout`` is that map: the keys in their order, each entry's shape, and where it sits in
s (``span(key)``: the index range [start, stop)).  Its ``record()`` is small JSON (the keys and
shapes) that a run saves beside its arrays, so that a file says how its vectors were laid
out; ``from_record`` reads one back as untrusted input (typed and bounded), and ``check_space``
tells whether an env's space still has that layout.

Every observation passes ``flatten`` before it reaches a buffer or a kernel, and ``flatten``
refuses, in one line naming the key, a missing or extra key, an entry of the wrong shape or
kind, and a non-finite number.  Hindsight experience replay (numddpg.engine.her) needs the
spans of the achieved and the desired goal inside s: ``goal_spans``.

This module reads a space by its attributes (``spaces`` of a Dict; ``shape``, ``low``,
``high`` of a Box) and so needs no gymnasium import; the training layer hands it the space.
It lives with the files because the NumPy-only policy file (numddpg.files.policy) records a
layout and flattens Dict observations with it; it needs nothing but NumPy.
"""
import math

import numpy as np

MAX_KEYS = 64                  # the most entries a recorded Dict may have
MAX_KEY_CHARS = 200            # the longest key
MAX_NDIM = 8                   # the most dimensions of one entry
MAX_FLAT_DIM = 1 << 24         # the most numbers a flattened observation may hold (64 MiB f32)
ACHIEVED, DESIRED = "achieved_goal", "desired_goal"      # a goal env's keys (gymnasium-robotics)


class DictObsError(ValueError):
    """A Dict observation, space or record that does not fit the layout (the message names the
    key)."""


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_FLAT_DIM


class DictLayout:
    """Where each entry of a Dict observation sits in the flat vector s (module docstring).

    Attributes
    ----------
    keys : tuple of str, sorted          the entries, in the order they are laid out
    shapes : tuple of tuples of int      each entry's shape (() for a scalar Box)
    starts, stops : tuple of int         entry ``keys[i]`` is s[starts[i]:stops[i]]
    obs_dim : int                        the length of s
    """

    def __init__(self, shapes):
        """shapes : {key: shape}; checked as a record is (``from_record``), laid out sorted."""
        if not isinstance(shapes, dict) or not 1 <= len(shapes) <= MAX_KEYS:
            raise DictObsError(f"a Dict layout needs 1 to {MAX_KEYS} entries, got {shapes!r:.200}")
        for key, shape in shapes.items():
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
                raise DictObsError(f"Dict key {key!r:.200} must be a text of 1 to "
                                   f"{MAX_KEY_CHARS} characters")
            if (not isinstance(shape, (tuple, list)) or len(shape) > MAX_NDIM
                    or not all(_is_count(d) for d in shape)):
                raise DictObsError(f"Dict entry {key!r}: shape {shape!r:.200} must be a list of "
                                   f"at most {MAX_NDIM} positive integers")
        self.keys = tuple(sorted(shapes))
        self.shapes = tuple(tuple(int(d) for d in shapes[k]) for k in self.keys)
        sizes = [math.prod(shape) for shape in self.shapes]
        if sum(sizes) > MAX_FLAT_DIM:
            raise DictObsError(f"a Dict observation of {sum(sizes):,} numbers is larger than "
                               f"the {MAX_FLAT_DIM:,} numddpg flattens")
        self.stops = tuple(int(x) for x in np.cumsum(sizes))
        self.starts = (0,) + self.stops[:-1]
        self.obs_dim = self.stops[-1]

    # -- from a space, to and from a record ---------------------------------------------------
    @classmethod
    def from_space(cls, space):
        """The layout of a gymnasium ``spaces.Dict`` whose entries are Boxes, or DictObsError
        naming the first entry that is not a Box (a nested Dict, a Discrete, ...)."""
        entries = getattr(space, "spaces", None)
        if not isinstance(entries, dict) or not entries:
            raise DictObsError(f"expected a Dict observation space of Boxes, got {space}")
        shapes = {}
        for key, box in entries.items():
            low, high, shape = (getattr(box, a, None) for a in ("low", "high", "shape"))
            if not (isinstance(low, np.ndarray) and isinstance(high, np.ndarray)
                    and isinstance(shape, tuple) and low.shape == shape == high.shape):
                raise DictObsError(f"Dict observation entry {key!r} is {box}, not a Box; "
                                   "numddpg flattens Dicts of Boxes only (flatten the entry "
                                   "with an ObservationWrapper)")
            shapes[key] = shape
        return cls(shapes)

    def record(self):
        """{"keys": [...], "shapes": [[...], ...]}: JSON that ``from_record`` reads back."""
        return {"keys": list(self.keys), "shapes": [list(s) for s in self.shapes]}

    @classmethod
    def from_record(cls, record, obs_dim=None):
        """The layout a record read from a file describes, after checking its types and
        bounds (a record is untrusted: it may be hand-edited or damaged) and, given
        ``obs_dim``, that it flattens to that many numbers; DictObsError."""
        if not isinstance(record, dict) or set(record) != {"keys", "shapes"}:
            raise DictObsError(f"a Dict layout record has exactly the fields 'keys' and "
                               f"'shapes', got {record!r:.200}")
        keys, shapes = record["keys"], record["shapes"]
        if (not isinstance(keys, list) or not isinstance(shapes, list)
                or len(keys) != len(shapes) or not 1 <= len(keys) <= MAX_KEYS):
            raise DictObsError(f"a Dict layout record needs lists 'keys' and 'shapes' of the "
                               f"same length, 1 to {MAX_KEYS}, got {record!r:.200}")
        if not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
            raise DictObsError(f"a Dict layout record's keys must be distinct texts, got "
                               f"{keys!r:.200}")
        if keys != sorted(keys):
            raise DictObsError(f"a Dict layout record's keys must be in sorted order (the order "
                               f"numddpg flattens in), got {keys!r:.200}")
        layout = cls(dict(zip(keys, shapes)))
        if obs_dim is not None and layout.obs_dim != obs_dim:
            raise DictObsError(f"the Dict layout {layout} flattens to {layout.obs_dim} numbers, "
                               f"but the file's networks read {obs_dim}")
        return layout

    def check_space(self, space, what="the env's observation space"):
        """DictObsError unless ``space`` has this layout (the first differing entry named)."""
        other = DictLayout.from_space(space)
        if other == self:
            return
        mine, theirs = dict(zip(self.keys, self.shapes)), dict(zip(other.keys, other.shapes))
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                raise DictObsError(f"{what} differs from the recorded Dict layout at entry "
                                   f"{key!r}: recorded {_shape_or_none(mine.get(key))}, "
                                   f"the space has {_shape_or_none(theirs.get(key))}")

    def __eq__(self, other):
        return (isinstance(other, DictLayout) and self.keys == other.keys
                and self.shapes == other.shapes)

    def __repr__(self):
        return "DictLayout(" + ", ".join(f"{k}={s}" for k, s in zip(self.keys, self.shapes)) + ")"

    # -- where an entry sits ------------------------------------------------------------------
    def span(self, key):
        """(start, stop): entry ``key`` is s[start:stop]; DictObsError for an unknown key."""
        if key not in self.keys:
            raise DictObsError(f"the Dict observation has no entry {key!r}; its entries are "
                               f"{list(self.keys)}")
        i = self.keys.index(key)
        return self.starts[i], self.stops[i]

    def goal_spans(self):
        """(achieved, desired): the spans of 'achieved_goal' and 'desired_goal' in s, which
        hindsight relabelling reads and writes; DictObsError unless both are there with the
        same shape (a goal env's observation)."""
        missing = [k for k in (ACHIEVED, DESIRED) if k not in self.keys]
        if missing:
            raise DictObsError(f"hindsight experience replay needs a goal env's Dict "
                               f"observation, with entries {ACHIEVED!r} and {DESIRED!r}; this "
                               f"one has {list(self.keys)} (missing {missing[0]!r})")
        a, d = self.shapes[self.keys.index(ACHIEVED)], self.shapes[self.keys.index(DESIRED)]
        if a != d:
            raise DictObsError(f"{ACHIEVED!r} has shape {a} but {DESIRED!r} has shape {d}; a "
                               "goal env compares the two, so they must match")
        return self.span(ACHIEVED), self.span(DESIRED)

    # -- flatten and unflatten ----------------------------------------------------------------
    def flatten(self, obs, n_envs=None, out=None):
        """s from a Dict observation: float64 (obs_dim,), or (n_envs, obs_dim) for a vector
        env's observation (each entry (n_envs, *shape)).  ``out``: an array of that shape to
        fill instead of a new one.  DictObsError, naming the key, for a missing or extra key,
        an entry of the wrong shape or kind, or a non-finite number; nothing is coerced
        beyond a real array's cast to float64."""
        if not isinstance(obs, dict):
            raise DictObsError(f"expected a Dict observation (a dict of arrays with keys "
                               f"{list(self.keys)}), got {type(obs).__name__}")
        if obs.keys() != set(self.keys):
            missing = [k for k in self.keys if k not in obs]
            if missing:
                raise DictObsError(f"Dict observation has no entry {missing[0]!r} (expected "
                                   f"keys {list(self.keys)}, got {_keys(obs)})")
            extra = sorted(map(repr, set(obs) - set(self.keys)))
            raise DictObsError(f"Dict observation has an entry {extra[0]} that its space does "
                               f"not have (expected keys {list(self.keys)}, got {_keys(obs)})")
        lead = () if n_envs is None else (n_envs,)
        if out is None:
            out = np.empty(lead + (self.obs_dim,))
        for key, shape, start, stop in zip(self.keys, self.shapes, self.starts, self.stops):
            try:
                entry = np.asarray(obs[key])
            except Exception:                   # an object numpy cannot even look at
                entry = np.asarray(None, dtype=object)
            if entry.shape != lead + shape or entry.dtype.kind not in "fiu":
                raise DictObsError(f"Dict observation entry {key!r} has shape {entry.shape} and "
                                   f"dtype {entry.dtype}; its space promises shape "
                                   f"{lead + shape} of real numbers")
            values = entry.reshape(lead + (stop - start,))
            if not np.all(np.isfinite(values)):
                bad = np.argwhere(~np.isfinite(entry))[0]
                raise DictObsError(f"Dict observation entry {key!r} holds a non-finite number "
                                   f"({entry[tuple(bad)]} at index {tuple(int(i) for i in bad)})")
            out[..., start:stop] = values
        return out

    def batch_size(self, obs):
        """None if ``obs`` is one Dict observation, n if it is a batch of n (every entry with a
        leading axis of n), read from its first entry's dimensions; ``flatten`` then checks
        every entry against it.  DictObsError for a first entry of neither form."""
        if not isinstance(obs, dict) or self.keys[0] not in obs:
            return None                         # (flatten names what is wrong)
        ndim = np.ndim(obs[self.keys[0]])
        extra = ndim - len(self.shapes[0])
        if extra not in (0, 1):
            raise DictObsError(f"Dict observation entry {self.keys[0]!r} has {ndim} dimensions; "
                               f"its space's shape is {self.shapes[0]} (one observation), or "
                               f"a batch of them has one more")
        return None if extra == 0 else int(np.shape(obs[self.keys[0]])[0])

    def unflatten(self, s):
        """{key: array of the entry's shape} from s (obs_dim,) or (n, obs_dim): views into s,
        in the layout's key order (the inverse of ``flatten``)."""
        s = np.asarray(s)
        if s.shape[-1:] != (self.obs_dim,):
            raise DictObsError(f"a flat observation of this layout has {self.obs_dim} numbers "
                               f"in its last axis, got shape {s.shape}")
        lead = s.shape[:-1]
        return {key: s[..., start:stop].reshape(lead + shape)
                for key, shape, start, stop in zip(self.keys, self.shapes, self.starts,
                                                   self.stops)}


def _keys(obs):
    """The keys of a received dict as text, at most MAX_KEYS of them."""
    return "[" + ", ".join(sorted(map(repr, obs))[:MAX_KEYS]) + "]"


def _shape_or_none(shape):
    return "no such entry" if shape is None else f"shape {shape}"
