"""Numba's on-disk kernel cache, kept consistent across the package's files.

Numba checks a cached kernel against the one file that defines it (its modification time and
size).  But the kernels of update.py compile in the functions of nn.py, optim.py, rng.py and others:
after an edit of nn.py alone, a cached update.py kernel would still run the old nn.py code, or
fail to load ("'descr' is NULL").  So the cache directory carries a stamp, the SHA-256 of every
jitted source file, and when the sources no longer match it, every cached kernel of the package
is dropped and compiled afresh on first use.

Only the package's own ``__pycache__`` folders (one per subpackage) are managed, with the stamp
in the top one: that is where Numba caches when the sources
are writable, i.e. in a checkout or an editable install, the only places they get edited.  With
``NUMBA_CACHE_DIR`` set, the caches are the user's to clear.
"""
import hashlib
import os
from pathlib import Path

STAMP_FILE = "numddpg-jit-sources.sha256"
PACKAGE_DIR = Path(__file__).resolve().parent.parent          # numddpg/, above kernels/
JIT_MARKER = b"njit("          # every kernel of the package is declared with @njit(...)


def _jitted_modules(package_dir):
    """[(path, bytes)] of the package's modules, in every subpackage, that define Numba kernels
    (their text contains ``njit(``), sorted by their path relative to the package ("kernels/nn.py"),
    each file read once.  This module only talks about the decorator and is not one of them."""
    found = []
    root = Path(package_dir)
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        if path.resolve() == Path(__file__).resolve() or "__pycache__" in path.parts:
            continue
        try:
            text = path.read_bytes()
        except OSError:
            continue
        if JIT_MARKER in text:
            found.append((path.relative_to(root).as_posix(), text))
    return found


def jit_sources(package_dir=PACKAGE_DIR):
    """Sorted paths ("kernels/nn.py") of the package's jitted modules, found by reading them, so
    a new jitted module is covered without a list to keep."""
    return [name for name, _ in _jitted_modules(package_dir)]


def sources_digest(package_dir=PACKAGE_DIR):
    """Hex SHA-256 over the names and bytes of the jitted modules of ``package_dir``."""
    h = hashlib.sha256()
    for name, text in _jitted_modules(package_dir):
        h.update(name.encode() + b"\0" + text + b"\0")
    return h.hexdigest()


def drop_stale_kernels(package_dir=PACKAGE_DIR):
    """Delete the package's cached kernels if its jitted sources changed since they were
    stamped, then stamp them.  Returns the number of cache files deleted (0 when the stamp
    matches, when NUMBA_CACHE_DIR is set, or when the cache directory cannot be written)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return 0
    cache_dir = Path(package_dir) / "__pycache__"
    stamp = cache_dir / STAMP_FILE
    digest = sources_digest(package_dir)
    try:
        if stamp.read_text().strip() == digest:
            return 0
    except OSError:
        pass                                   # no stamp yet: a fresh tree, or an older one
    deleted = 0
    try:
        cache_dir.mkdir(exist_ok=True)
        # Every module's caches go, in every folder, not only today's jitted ones: one that
        # lost its kernels may have left some behind.  "nn." matches nn.mlp_forward-40.py311.nbi.
        for folder in [Path(package_dir), *(p for p in Path(package_dir).rglob("*")
                                            if p.is_dir() and p.name != "__pycache__")]:
            modules = tuple(p.stem + "." for p in folder.glob("*.py"))
            caches = folder / "__pycache__"
            for path in (caches.iterdir() if modules and caches.is_dir() else ()):
                if path.suffix in (".nbi", ".nbc") and path.name.startswith(modules):
                    path.unlink(missing_ok=True)
                    deleted += 1
        tmp = cache_dir / f"{STAMP_FILE}.{os.getpid()}.tmp"
        tmp.write_text(digest + "\n")
        os.replace(tmp, stamp)                 # atomic: concurrent processes agree on it
    except OSError:
        return deleted                         # read-only install: Numba caches elsewhere
    return deleted


def kernels_cached(package_dir=PACKAGE_DIR):
    """Whether the update's kernels look compiled and cached already (an index file of
    update.py's in the cache directory), so that a run can say "compiling kernels" when not.
    A guess for a message, never for a decision: a wrong one costs a line of text."""
    cache_dir = Path(os.environ.get("NUMBA_CACHE_DIR") or Path(package_dir))
    try:
        return any(cache_dir.rglob("update.*.nbi"))
    except OSError:
        return True
