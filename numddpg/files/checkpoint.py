"""Checkpoints: flat arrays plus a JSON record in one .npz, written atomically, read defensively.

The file (format_version 1) is a zip archive of .npy members, as ``numpy.savez`` writes it:

    __meta__.npy    uint8 (n,): the metadata record, UTF-8 JSON
    <name>.npy      one array per entry of meta["arrays"], and nothing else

    meta = {"format": "numddpg-checkpoint", "format_version": 1,
            "kind": "agent" | "algorithm" | "policy", "numddpg_version": "0.1.0",
            "arrays": {name: {"dtype": "float32", "shape": [P]}, ...},
            ...the kind's own fields}

    kind "agent"      numddpg.agents (save_agent): the agent's config and state_dict
    kind "policy"     numddpg.policy: the actor alone (params, mid, half, low, high)
    kind "algorithm"  numddpg.algorithms (OffPolicyAlgorithm.save): an agent (arrays "agent.*"),
                      the replay buffer ("buffer.*"), the loop's generator state and counters

This module is the container alone: each kind's owner states and checks its own fields and
arrays (an ``expect`` function, below), so this file knows nothing of agents or training.

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

This module imports only numpy and the standard library (numddpg.policy builds on it without
numba, and it imports nothing of numddpg).
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
        from .. import __version__
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
        if Path(path).is_dir():
            raise CheckpointError(f"{where}: a directory, not a checkpoint file; name the "
                                  "file inside it")
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
        if {"data", "policy.pth"} <= set(by_name):
            raise CheckpointError(f"{where}: a Stable-Baselines3 model file (torch pickles), which "
                                  "numddpg does not read, since loading a pickle can run any code; "
                                  "to carry its weights over, pass SB3's get_parameters(), "
                                  "converted to NumPy arrays, to numddpg.sb3's set_parameters()")
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
    if not (is_int(version) and version in SUPPORTED_VERSIONS):
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
        if not (isinstance(shape, list) and all(is_int(s) and s >= 0 for s in shape)):
            raise CheckpointError(f"{where}: array {name!r}: shape {shape!r} is not a list of "
                                  "non-negative integers")


def _check_finite(arr, what):
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise CheckpointError(f"{what} has a non-finite value {arr[bad]} at index {bad}")


def is_int(v):
    """A JSON integer (bool excluded): the check of every count read from a file."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    """A finite JSON number (bool excluded)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
