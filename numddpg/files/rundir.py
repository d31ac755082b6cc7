"""Run directories: what a training run leaves on disk and shows on screen.

    runs/<env>_<algo>_s<seed>_<timestamp>/
        config.json     every hyperparameter, the env, and numddpg/numpy/numba/gymnasium versions
        progress.csv    one row per epoch, columns PROGRESS_COLUMNS, flushed after every row
        policy.npz      the final actor (numddpg.files.policy)

A run directory is never reused: creating one that exists raises RunDirExists.
"""
import csv
import datetime
import errno
import json
import math
import os
import platform
import re
import stat
import sys
from pathlib import Path

from ..portable import LOCKING, lock_file
from .small import FileTooLarge, kind_of, read_small

CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.csv"
PROGRESS_COLUMNS = ("Epoch", "TotalEnvInteracts",
                    "AverageEpRet", "StdEpRet", "MaxEpRet", "MinEpRet",
                    "AverageTestEpRet", "StdTestEpRet", "MaxTestEpRet", "MinTestEpRet",
                    "EpLen", "TestEpLen", "AverageQVals", "StdQVals", "LossPi", "LossQ",
                    "SPS", "Time")
# the test episodes' success rate (their last info["is_success"]): a column of the runs of
# goal envs (Dict observations), after PROGRESS_COLUMNS
SUCCESS_COLUMN = "TestSuccessRate"


class RunDirExists(FileExistsError):
    """The run directory already exists; numddpg never writes over a previous run."""


class RunDirError(ValueError):
    """A path given as a run directory that is not one (a file, a folder without config.json)."""


class RunDirBusy(RuntimeError):
    """Another process is training in this run directory (it holds the directory's lock)."""


LOCK_FILE = ".lock"


class RunLock:
    """An advisory lock on a run directory, so that one process at a time writes there.

    ``acquire`` takes an exclusive ``flock`` on RUN_DIR/.lock (and writes this PID into it), or
    raises RunDirBusy naming the PID that holds it.  The kernel drops a flock when its process
    dies, however it dies, so a lock left by a killed run never blocks.  Acquiring twice through
    the same object is a no-op.  The lock is numddpg.portable's: flock on POSIX, msvcrt's
    byte-range lock on Windows; where neither exists, nothing is locked and a warning says so.
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        if self._fd is not None:
            return self
        if LOCKING == "none":
            _warn_unlocked()
            return self
        fd = open_lock_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            lock_file(fd)
        except OSError:
            os.close(fd)
            raise RunDirBusy(f"run directory {str(self.path.parent)!r} is in use by process "
                             f"{holder_pid(self.path.parent) or '(unknown)'}, which is training "
                             "there; wait for it to finish or stop it first (numddpg never lets "
                             "two processes write one run)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)                # closing the descriptor drops the flock
            self._fd = None


def _warn_unlocked():
    import warnings
    warnings.warn("this platform has neither fcntl nor msvcrt: run directories are not locked, "
                  "so make sure that only one process trains in each", RuntimeWarning,
                  stacklevel=3)




def _not_a_lock(path):
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = 0
    kind = "symbolic link" if stat.S_ISLNK(mode) else kind_of(mode)
    return RunDirError(f"{path} is a {kind}, not the lock file numddpg makes (a regular file "
                       "holding a PID): numddpg neither follows nor writes through it. Remove it "
                       f"and run again")


def open_lock_file(path, flags):
    """A descriptor of ``path`` opened with ``flags``, never through a symbolic link (O_NOFOLLOW;
    checked first where the platform lacks it) and only if it is a regular file; RunDirError
    saying what it is otherwise.  O_NONBLOCK: opening a named pipe must not wait for a writer."""
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):
        raise _not_a_lock(path)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK) or (
                os.path.lexists(path) and not os.path.isfile(path)) or os.path.islink(path):
            raise _not_a_lock(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_lock(path)
    return fd


def holder_pid(run_dir):
    """The PID written in RUN_DIR/.lock, if the file is a regular one holding a PID (the lock
    itself tells whether that process still holds it); None otherwise."""
    try:
        fd = open_lock_file(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except (OSError, RunDirError):
        return None
    try:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return int(text) if re.fullmatch(r"[0-9]{1,10}", text) else None


def run_name(env_id, algo, seed, when=None):
    """"<env>_<algo>_s<seed>_<YYYYmmdd-HHMMSS>", with characters unsafe in paths replaced."""
    when = datetime.datetime.now() if when is None else when
    env = re.sub(r"[^A-Za-z0-9._-]+", "-", str(env_id))
    return f"{env}_{algo}_s{seed}_{when.strftime('%Y%m%d-%H%M%S')}"


def create_run_dir(run_dir=None, root="runs", env_id="env", algo="ddpg", seed=0):
    """Create and return a new, empty run directory (pathlib.Path).

    run_dir : exact directory to create; RunDirExists if it exists already.
    Otherwise ``root/run_name(...)``; if two runs start in the same second with the same
    env, algo and seed, the second gets a "-2" suffix (and so on) rather than sharing a directory.
    """
    if run_dir is not None:
        path = Path(run_dir)
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise RunDirExists(f"{str(path)!r} already exists; numddpg never overwrites a "
                               "previous run. Choose another --out directory (or leave it out "
                               "for a fresh timestamped one), or continue that run with "
                               "--resume.") from None
        except NotADirectoryError:
            raise RunDirExists(f"cannot create run directory {str(path)!r}: a part of that "
                               "path is a file, not a directory") from None
        return path
    base = Path(root) / run_name(env_id, algo, seed)
    path, k = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def versions():
    """Versions of the software a result depends on, the CPU it ran on and, when numddpg runs
    from a git checkout, the commit of that checkout (None otherwise)."""
    import gymnasium
    import numba
    import numpy

    from .. import __version__
    return {"numddpg": __version__, "numpy": numpy.__version__, "numba": numba.__version__,
            "gymnasium": gymnasium.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": cpu_model(), "commit": source_commit()}


def _head(path, limit=4096):
    """The first line of a small text file, or "" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("ascii", "replace").splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


def cpu_model():
    """The CPU's model name, with its family and model numbers where Linux gives them
    ("AMD EPYC (family 25, model 1)"): timings and learning runs are only comparable on one."""
    fields = {}
    try:
        with open("/proc/cpuinfo", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                key, sep, value = line.partition(":")
                if not sep:
                    break                          # the first processor's block ends
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


_SHA = re.compile(r"[0-9a-f]{40}")


def source_commit(root=None):
    """The commit checked out where numddpg's source lies (a clone or a worktree), read from
    git's files without running git (a branch's ref file, else its line in packed-refs, as a
    fresh clone keeps it); None outside a checkout.  ``root``: the checkout's top (default: the
    one above this package)."""
    git = Path(root or Path(__file__).resolve().parents[2]) / ".git"
    if git.is_file():                              # a worktree: ".git" names its git dir
        line = _head(git)
        if not line.startswith("gitdir:"):
            return None
        git = (git.parent / line[len("gitdir:"):].strip()).resolve()
    head = _head(git / "HEAD")
    if head.startswith("ref:"):                    # a branch: its ref, here or in commondir
        ref = head[len("ref:"):].strip()
        common = _head(git / "commondir")
        roots = [git] + ([(git / common).resolve()] if common else [])
        head = next((h for h in (_head(r / ref) for r in roots) if h), "")
        if not head:
            head = next((h for h in (_packed_ref(r / "packed-refs", ref) for r in roots)
                         if h), "")
    return head if _SHA.fullmatch(head) else None


def _packed_ref(path, ref, limit=1 << 20):
    """The commit of ``ref`` in git's packed-refs file ``path`` ("<sha> <ref>" lines), or ""."""
    try:
        with open(path, "rb") as f:
            lines = f.read(limit).decode("ascii", "replace").splitlines()
    except OSError:
        return ""
    for line in lines:
        sha, _, name = line.strip().partition(" ")
        if name == ref:
            return sha
    return ""


def jsonable(v):
    """A JSON-able copy of ``v`` (config.json's, a checkpoint record's): tuples -> lists,
    numpy scalars -> Python numbers, NaN and inf -> None, other objects -> their str."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "item") and getattr(v, "shape", None) == ():
        v = v.item()                           # numpy scalars
    if isinstance(v, float) and not math.isfinite(v):
        return None                            # JSON has no NaN or inf
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)                              # dtypes, classes: their name


def write_config(run_dir, config):
    """Write ``config`` (a dict) plus ``versions()`` to run_dir/config.json."""
    from .checkpoint import atomic_write

    data = dict(jsonable(config))
    data["versions"] = versions()
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(Path(run_dir) / CONFIG_FILE, lambda f: f.write(text.encode("utf-8")))


MAX_CONFIG_BYTES = 1 << 20          # config.json is a few kB; a larger one is not ours


def read_config(run_dir):
    """RUN_DIR/config.json as a dict, or ValueError saying what is wrong with the file (its
    values are checked by whoever uses them: it is untrusted input like any file)."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        raw = read_small(path, MAX_CONFIG_BYTES, "config")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; {str(run_dir)!r} is not a numddpg run "
                         "directory") from None
    except FileTooLarge:
        raise ValueError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes: not a numddpg config") \
            from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


class ProgressCSV:
    """progress.csv: a header of PROGRESS_COLUMNS, then one row per epoch, flushed at once."""

    def __init__(self, path, columns=PROGRESS_COLUMNS):
        self.path = Path(path)
        self.columns = tuple(columns)
        new = not self.path.exists()
        self._f = open(self.path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=self.columns, extrasaction="raise")
        if new:
            self._w.writeheader()
            self._f.flush()

    def write(self, row):
        """Append one row (a dict with exactly the columns); floats in repr precision."""
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise KeyError(f"progress row is missing columns {missing}")
        self._w.writerow({c: _fmt(row[c]) for c in self.columns})
        self._f.flush()

    def sync(self):
        """Flush and fsync: rows written so far survive a crash of the machine."""
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self):
        if not self._f.closed:
            self._f.close()


def truncate_progress(path, n_rows, missing_ok=False):
    """Keep the header and the first ``n_rows`` rows of a progress.csv, dropping later rows and a
    partly written last line: a resumed run rewrites the rows after its checkpoint, so none is
    duplicated.  Raises ValueError if the file holds fewer complete rows than n_rows (with
    missing_ok and n_rows 0, a missing or headless file is simply removed: it is written anew)."""
    path = Path(path)
    data = path.read_bytes() if path.exists() else b""
    if missing_ok and n_rows == 0 and b"\n" not in data:
        path.unlink(missing_ok=True)
        return
    lines = data.split(b"\n")[:-1]               # complete lines only (each ends in a newline)
    if len(lines) < 1 + n_rows:
        raise ValueError(f"{path} holds {max(len(lines) - 1, 0)} complete rows, but the "
                         f"checkpoint was taken after {n_rows}; the file was edited or lost")
    keep = sum(len(line) + 1 for line in lines[:1 + n_rows])
    if keep < len(data):
        with open(path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())


def _fmt(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return v


def read_progress(path):
    """progress.csv as a dict column -> list of floats."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {c: [float(r[c]) for r in rows] for c in (rows[0].keys() if rows else ())}


class ProgressBar:
    """A tqdm bar over env steps showing SPS and the last test return; a no-op when disabled."""

    def __init__(self, total, initial=0, disable=False, desc="train"):
        self.disable = bool(disable)
        self._bar = None
        if not self.disable:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=int(total), initial=int(initial), desc=desc, unit="step",
                             dynamic_ncols=True, mininterval=0.25, file=sys.stderr,
                             smoothing=0.05)
        self._n = int(initial)

    def update_to(self, n):
        """Move the bar to step n (cheap when called often: tqdm rate-limits the redraws)."""
        if self._bar is not None and n > self._n:
            self._bar.update(n - self._n)
        self._n = n

    def set_stats(self, sps=None, test_return=None):
        if self._bar is None:
            return
        stats = {}
        if sps is not None:
            stats["SPS"] = f"{sps:,.0f}"
        if test_return is not None:
            stats["test"] = f"{test_return:.1f}"
        self._bar.set_postfix(stats, refresh=False)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
