"""The README's Python examples run as written.

Every ```python block of README.md is executed, in order and in one namespace (a later block
may use what an earlier one defined, as a reader pasting them into one session would), in a
fresh working directory, so that the run directory and files the examples write land there.
The ```bash blocks are not run: they create virtual environments and install packages.
"""
import re
import time
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(text):
    """(first line number, code) of each ```python block of a markdown text."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_python_blocks_are_found():
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = x\n```\n"
    blocks = python_blocks(text)
    assert blocks == [(3, "x = 1\n"), (9, "y = x\n")]


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2, "README.md should hold its Python examples in ```python blocks"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for line, code in blocks:
        started = time.perf_counter()
        # compiled under the README's name and line, so a failure's traceback points there
        exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)
        print(f"README.md line {line}: {time.perf_counter() - started:.1f} s")
    # the first example trains and, as its comment says, writes a run directory
    assert len(list((tmp_path / "runs").glob("Pendulum-v1_ddpg_s0_*/policy.npz"))) == 1
