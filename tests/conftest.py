"""Shared pytest/hypothesis settings for numddpg's tests.

Numba compiles a kernel on its first call (seconds), so hypothesis's per-example deadline is
off; max_examples is modest so the whole suite runs in well under two minutes on 2 cores once
the kernels are compiled (``cache=True`` keeps them across runs).  Set HYPOTHESIS_PROFILE=thorough
for a longer search.
"""
import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("numddpg", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=300,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "numddpg"))

# numddpg.kernels.threads caches its chunk calibrations under XDG_CACHE_HOME: the suite keeps its own,
# out of the user's home, shared by the whole session (one calibration per shape) and removed
# when the session ends.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="numddpg-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)


@pytest.fixture
def rng():
    """A fresh, seeded numpy Generator: tests are reproducible run to run."""
    return np.random.default_rng(12345)
