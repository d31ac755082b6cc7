"""Numba's on-disk kernel cache, kept consistent across the package's files.

Numba checks a cached kernel against the one file that defines it (its modification time and
size).  But the kernels of agents.py compile in the functions of nn.py, optim.py and rng.py:
after an edit of nn.py alone, a cached agents.py kernel would still run the old nn.py code, or
fail to load ("'descr' is NULL").  So the cache directory carries a stamp, the SHA-256 of every
jitted source file, and when the sources no longer match it, every cached kernel of the package
is dropped and compiled afresh on first use.

Only the package's own ``__pycache__`` is managed: that is where Numba caches when the sources
are writable, i.e. in a checkout or an editable install, the only places they get edited.  With
``NUMBA_CACHE_DIR`` set, the caches are the user's to clear.
"""
import hashlib
import os
from pathlib import Path

# The modules that define @njit(cache=True) functions.
JIT_SOURCES = ("agents.py", "buffer.py", "nn.py", "noise.py", "optim.py", "rng.py")
STAMP_FILE = "numddpg-jit-sources.sha256"
PACKAGE_DIR = Path(__file__).resolve().parent


def sources_digest(package_dir=PACKAGE_DIR):
    """Hex SHA-256 over the names and bytes of the JIT_SOURCES of ``package_dir``."""
    h = hashlib.sha256()
    for name in JIT_SOURCES:
        h.update(name.encode() + b"\0")
        try:
            h.update((Path(package_dir) / name).read_bytes())
        except OSError:
            h.update(b"<missing>")
        h.update(b"\0")
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
    modules = tuple(name[:-3] + "." for name in JIT_SOURCES)   # "nn." matches nn.mlp_forward-..
    try:
        cache_dir.mkdir(exist_ok=True)
        for path in cache_dir.iterdir():
            if path.suffix in (".nbi", ".nbc") and path.name.startswith(modules):
                path.unlink(missing_ok=True)
                deleted += 1
        tmp = cache_dir / f"{STAMP_FILE}.{os.getpid()}.tmp"
        tmp.write_text(digest + "\n")
        os.replace(tmp, stamp)                 # atomic: concurrent processes agree on it
    except OSError:
        return deleted                         # read-only install: Numba caches elsewhere
    return deleted
