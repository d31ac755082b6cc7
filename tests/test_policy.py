"""numddpg.files.policy: the NumPy-only policy file and callable.

ACT64 1e-12 absolute (float64 nets, actions O(1)): NumpyPolicy and the jitted mlp_forward do
      the same products and sums; BLAS may block the matmuls differently (~1e-16 relative),
      nothing else differs.
ACT32 1e-5 absolute (float32 nets, actions in [-2, 2]): as above, plus NumPy's and Numba's
      float32 tanh may differ by an ulp or two (~2.4e-7 near 2); 1e-5 leaves room for the
      matmul blocking while any wrong weight, bias or activation moves actions by ~1e-2.
The import tests run in subprocesses, the only way to see a clean sys.modules.
"""
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numddpg.files import policy as pol
from numddpg.engine.agents import DDPGAgent, TD3Agent
from numddpg.files.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
ACT64, ACT32 = 1e-12, 1e-5


def export(agent, path, **info):
    return pol.save_policy(path, agent.actor.params, agent.actor.sizes, agent.mid, agent.half,
                           agent.act_low, agent.act_high, **info)


@pytest.mark.parametrize("cls", [DDPGAgent, TD3Agent])
@pytest.mark.parametrize("dtype,tol", [(np.float64, ACT64), (np.float32, ACT32)])
def test_numpy_policy_matches_the_agent(tmp_path, cls, dtype, tol):
    agent = cls(4, 2, [-2.0, 0.0], [2.0, 1.0], hidden_sizes=(16, 8), dtype=dtype, seed=5)
    path = export(agent, tmp_path / "policy.npz", algo=agent.algo, env_id="Toy-v0",
                  act_dtype=np.dtype(dtype).name)
    policy = pol.load_policy(path)
    obs = np.random.default_rng(0).standard_normal((50, 4)) * 3
    want = agent.act(obs)                       # mid + half * tanh(actor(obs)), jitted
    got = policy(obs)
    assert got.shape == (50, 2) and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert np.all(got >= [-2.0, 0.0]) and np.all(got <= [2.0, 1.0])
    np.testing.assert_array_equal(policy(obs[7]), got[7])       # one obs -> one action
    assert policy.meta["algo"] == agent.algo and policy.meta["env_id"] == "Toy-v0"
    assert policy.layer_sizes == (4, 16, 8, 2) and policy.dtype == dtype


def test_policy_reads_a_run_directory_and_checks_obs(tmp_path):
    agent = DDPGAgent(3, 1, -2.0, 2.0, hidden_sizes=(4,), seed=0)
    export(agent, tmp_path / pol.POLICY_FILE, act_dtype="float64")
    policy = pol.load_policy(tmp_path)
    assert policy(np.zeros(3)).dtype == np.float64
    with pytest.raises(ValueError, match=r"shape \(3,\) or \(batch, 3\)"):
        policy(np.zeros(4))
    with pytest.raises(CheckpointError, match="no saved policy"):
        pol.load_policy(tmp_path / "missing")


def test_policy_refuses_an_agent_checkpoint(tmp_path):
    from numddpg.engine.agents import save_agent
    path = save_agent(tmp_path / "agent.npz", DDPGAgent(3, 1, -1.0, 1.0, hidden_sizes=(4,)))
    with pytest.raises(CheckpointError, match="'agent' checkpoint, not the 'policy'"):
        pol.load_policy(path)


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    agent = DDPGAgent(3, 1, -2.0, 2.0, hidden_sizes=(8, 8), seed=1)
    return export(agent, tmp_path_factory.mktemp("pol") / "policy.npz", env_id="Pendulum-v1")


@settings(max_examples=40)
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_policy_is_rejected(policy_file, tmp_path_factory, cut):
    data = policy_file.read_bytes()
    bad = tmp_path_factory.getbasetemp() / "cut.npz"
    bad.write_bytes(data[:int(cut * len(data))])
    with pytest.raises(CheckpointError):
        pol.load_policy(bad)


@settings(max_examples=40)
@given(key=st.sampled_from(["layer_sizes", "dtype", "act_dtype", "hidden_activation",
                            "output_activation"]),
       value=st.sampled_from([None, [3, 8, 8], [3, 8, 9, 1], [3, 0, 1], "float16", "sigmoid",
                              "object", 1, [3.0, 8, 8, 1]]))
def test_doctored_policy_record_is_rejected(policy_file, tmp_path_factory, key, value):
    """A record edit that changes the meaning (layer sizes, dtypes, activations) is refused."""
    items = members(policy_file)
    meta = get_meta(items)
    if meta[key] == value or (key == "act_dtype" and value == "float16"):
        value = "sigmoid"                      # float16 is a valid act_dtype: not an edit
    meta[key] = value
    items = [(n, meta_bytes(meta) if n == "__meta__.npy" else d) for n, d in items]
    bad = write_zip(tmp_path_factory.getbasetemp() / "doctored.npz", items)
    assert zipfile.is_zipfile(bad)
    with pytest.raises(CheckpointError):
        pol.load_policy(bad)


def members(path):
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def get_meta(items):
    raw = np.lib.format.read_array(io.BytesIO(dict(items)["__meta__.npy"]), allow_pickle=False)
    return json.loads(raw.tobytes())


def meta_bytes(meta):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return buf.getvalue()


def write_zip(path, items):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


def _run(code, cwd):
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


STANDALONE = """
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("policy", {path!r})
policy_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(policy_module)
policy = policy_module.load_policy({file!r})
action = policy(np.array([0.1, -0.2, 0.3]))
print(json.dumps({{"action": action.tolist(), "modules": sorted(m for m in sys.modules
                  if m.split('.')[0] in ('numba', 'gymnasium', 'numddpg', 'llvmlite'))}}))
"""


def test_standalone_copy_needs_only_numpy(policy_file, tmp_path):
    """policy.py + checkpoint.py copied into a bare folder, loaded by path, outside the repo:
    they load the file and act, and neither numba nor gymnasium nor numddpg gets imported."""
    for name in ("policy.py", "checkpoint.py"):
        shutil.copy(ROOT / "numddpg" / "files" / name, tmp_path / name)
    got = _run(STANDALONE.format(path=str(tmp_path / "policy.py"), file=str(policy_file)),
               cwd=tmp_path)
    assert got["modules"] == []
    want = pol.load_policy(policy_file)(np.array([0.1, -0.2, 0.3]))
    np.testing.assert_array_equal(np.array(got["action"], np.float32), want)


PACKAGE = """
import json, sys
import numpy as np
import numddpg
policy = numddpg.load_policy({file!r})
action = policy(np.array([0.1, -0.2, 0.3]))
print(json.dumps({{"action": action.tolist(), "type": type(policy).__name__,
                  "modules": sorted(m for m in sys.modules
                                    if m.split('.')[0] in ('numba', 'gymnasium', 'llvmlite'))}}))
"""


def test_numddpg_load_policy_does_not_import_numba_or_gymnasium(policy_file):
    got = _run(PACKAGE.format(file=str(policy_file)), cwd=ROOT)
    assert got["type"] == "NumpyPolicy"
    assert got["modules"] == []


def test_export_from_a_run_directory_and_from_checkpoints(tmp_path, capsys):
    """`numddpg export` writes a policy whose actions equal the trained model's predict(), from
    the run directory, its checkpoint.npz, or an agent checkpoint."""
    from numddpg.tools import cli
    from numddpg.training.algorithms import DDPG
    from numddpg.engine.agents import save_agent
    m = DDPG("Pendulum-v1", run_dir=tmp_path / "run", hidden_sizes=(8,), steps_per_epoch=300,
             start_steps=100, update_after=100, num_test_episodes=0, seed=2)
    m.learn(600, progress_bar=False)
    obs = np.random.default_rng(1).uniform(-1, 1, (6, 3)).astype(np.float32)
    want = m.predict(obs)[0]
    for i, src in enumerate([tmp_path / "run", tmp_path / "run" / "checkpoint.npz",
                             save_agent(tmp_path / "agent.npz", m.agent)]):
        out = tmp_path / f"exported{i}.npz"
        assert cli.main(["export", str(src), str(out)]) == 0
        assert "numddpg.load_policy" in capsys.readouterr().out
        policy = pol.load_policy(out)
        np.testing.assert_allclose(policy(obs), want, rtol=0, atol=ACT32)
        assert policy.meta["algo"] == "ddpg"
        if i < 2:
            assert policy.meta["env_id"] == "Pendulum-v1"
    assert cli.main(["export", str(tmp_path / "nothing"), str(tmp_path / "x.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
