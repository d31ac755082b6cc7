"""docs/tutorial.ipynb runs top to bottom: every cell, every assert in it (kernels against the
NumPy twin, gradients against finite differences, the Pendulum-v1 run against a random policy).

Executed with nbclient in a kernel of *this* interpreter (sys.executable), whatever kernels the
machine has registered, so that it imports the numddpg under test.  Skipped cleanly without the
``docs`` extra (nbclient, nbformat, ipykernel, matplotlib).
"""
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
CELL_TIMEOUT = 600     # seconds: a cold first cell compiles numddpg's kernels (~1 min here)


class ThisPython(KernelSpecManager):
    """Every kernel name resolves to ipykernel on sys.executable: the environment running the
    tests, not whichever "python" a registered kernel spec finds on PATH."""

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                "{connection_file}"],
                          display_name=f"Python ({sys.executable})", language="python",
                          env={}, resource_dir="")


def test_tutorial_runs_top_to_bottom(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # cwd
    started = time.perf_counter()
    client.execute()           # raises CellExecutionError, with the cell and its traceback
    seconds = time.perf_counter() - started
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code)
    print(f"tutorial: {len(code)} code cells in {seconds:.0f} s")
