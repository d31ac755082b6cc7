"""numddpg.kernels.jitcache: cached kernels are dropped when any jitted source changes, and only then."""
import os

import pytest

from numddpg.kernels.jitcache import STAMP_FILE, drop_stale_kernels, jit_sources, sources_digest

# The jitted modules of a flat fake package (as numddpg was before it had folders).
JITTED = ["buffer.py", "gemm.py", "nn.py", "noise.py", "normalize.py", "optim.py", "rng.py",
          "sync.py", "threads.py", "update.py"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A fake package: the jitted sources, a module without kernels, and an empty __pycache__
    (add_kernels puts Numba caches of two of the modules there)."""
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    for name in JITTED:
        (tmp_path / name).write_text(f"# {name}\n@njit(cache=True)\ndef f(x):\n    return x\n")
    (tmp_path / "cli.py").write_text("def main():\n    pass\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    return tmp_path


def add_kernels(pkg):
    names = ["update.ddpg_updates-107.py311.nbi", "update.ddpg_updates-107.py311.1.nbc",
             "nn.mlp_forward-40.py311.nbi"]
    for n in names:
        (pkg / "__pycache__" / n).write_bytes(b"x")
    return names


def cache_names(pkg):
    return sorted(p.name for p in (pkg / "__pycache__").iterdir())


def test_first_call_drops_unstamped_kernels_and_keeps_other_files(tree):
    add_kernels(tree)
    keep = ["agents.cpython-311.pyc", "elsewhere.helper-3.py311.nbi"]   # no such module here
    for n in keep:
        (tree / "__pycache__" / n).write_bytes(b"y")
    assert drop_stale_kernels(tree) == 3
    assert cache_names(tree) == sorted(keep + [STAMP_FILE])
    assert (tree / "__pycache__" / STAMP_FILE).read_text().strip() == sources_digest(tree)


def test_matching_stamp_keeps_the_kernels(tree):
    drop_stale_kernels(tree)
    names = add_kernels(tree)
    assert drop_stale_kernels(tree) == 0
    assert cache_names(tree) == sorted(names + [STAMP_FILE])


@pytest.mark.parametrize("edited", ["nn.py", "optim.py", "rng.py"])
def test_editing_an_inlined_module_drops_the_kernels_of_every_module(tree, edited):
    # the case Numba misses: agents.py unchanged, a module its kernels compile in edited
    drop_stale_kernels(tree)
    add_kernels(tree)
    old = sources_digest(tree)
    with open(tree / edited, "a") as f:
        f.write("# edited\n")
    assert sources_digest(tree) != old
    assert drop_stale_kernels(tree) == 3
    assert cache_names(tree) == [STAMP_FILE]


def test_jitted_modules_are_found_by_their_decorator(tree):
    assert jit_sources(tree) == JITTED
    (tree / "kernels2.py").write_text("from numba import njit\n@njit(cache=True)\ndef g(): pass\n")
    assert jit_sources(tree) == sorted(JITTED + ["kernels2.py"])


def test_kernels_in_subpackages_are_found_and_dropped(tree):
    drop_stale_kernels(tree)
    sub = tree / "kernels"
    (sub / "__pycache__").mkdir(parents=True)
    (sub / "update.py").write_text("@njit(cache=True)\ndef f(x):\n    return x\n")
    (sub / "__pycache__" / "update.ddpg_updates-7.py311.nbi").write_bytes(b"x")
    assert "kernels/update.py" in jit_sources(tree)
    assert drop_stale_kernels(tree) == 1                     # the sources changed: a new module
    assert list((sub / "__pycache__").iterdir()) == []


# The package's jitted modules, by their path in the package.
REAL_JITTED = ["engine/noise.py", "kernels/gemm.py", "kernels/her.py", "kernels/nn.py",
               "kernels/normalize.py", "kernels/optim.py", "kernels/replay.py", "kernels/rng.py",
               "kernels/sync.py", "kernels/threads.py", "kernels/update.py"]


def test_the_real_package_lists_its_jitted_modules():
    assert jit_sources() == REAL_JITTED


def test_a_new_jitted_module_counts_and_a_plain_module_does_not(tree):
    drop_stale_kernels(tree)
    names = add_kernels(tree)
    (tree / "cli.py").write_text("def main():\n    return 1\n")      # no kernels: no effect
    assert drop_stale_kernels(tree) == 0
    assert cache_names(tree) == sorted(names + [STAMP_FILE])
    (tree / "kernels2.py").write_text("@njit(cache=True)\ndef g():\n    return 2\n")
    assert drop_stale_kernels(tree) == 3
    assert cache_names(tree) == [STAMP_FILE]


def test_user_cache_dir_is_left_alone(tree, monkeypatch):
    names = add_kernels(tree)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tree / "elsewhere"))
    assert drop_stale_kernels(tree) == 0
    assert cache_names(tree) == sorted(names)


def test_read_only_tree_is_not_an_error(tree, monkeypatch):
    # (a permission error made by hand: chmod does not stop root, who may run this suite)
    add_kernels(tree)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(type(tree), "unlink", refuse)
    assert drop_stale_kernels(tree) == 0
    monkeypatch.undo()
    assert STAMP_FILE not in cache_names(tree)       # not stamped: it retries next time


def test_the_installed_package_is_stamped_with_its_own_sources():
    import numddpg  # noqa: F401  (the import stamps the cache)
    from numddpg.kernels.jitcache import PACKAGE_DIR
    stamp = PACKAGE_DIR / "__pycache__" / STAMP_FILE
    if not os.access(PACKAGE_DIR, os.W_OK) or os.environ.get("NUMBA_CACHE_DIR"):
        pytest.skip("the package's own cache is not managed here")
    assert stamp.read_text().strip() == sources_digest()
