"""numddpg.sb3: a model's parts under SB3's names (policy, actor, critic, get/set_parameters,
replay_buffer) and SB3's arguments that now mean what they mean in SB3 (gradient_steps 0 and
-1, batch_size > buffer_size, handle_timeout_termination, MultiBinary and MultiDiscrete
observations, Box actions of any shape)."""
import sys
import types
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import numddpg
from helpers import small_sb3
from numddpg.engine.agents import save_agent
from numddpg.files.checkpoint import CheckpointError
from numddpg.sb3 import DDPG, TD3
from numddpg.sb3.parameters import ParameterError

TINY = dict(net_arch=[8])


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


def small(Algo=DDPG, env="Pendulum-v1", **kw):
    return small_sb3(Algo, env, **kw)


# ---------------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------------

def test_policy_holds_the_live_networks():
    model = small(TD3)
    policy = model.policy
    assert policy.device == "cpu" == policy.device.type == model.device.type
    assert model.actor.params is model.native.agent.actor.params     # SB3's Actor over it
    agent = model.native.agent
    # SB3's ContinuousCritic names over the live MLPs: qf0, qf1, q_networks; critic 1's arrays
    # are model.critic's own, as when it was one MLP
    assert policy.critic.n_critics == 2 and policy.critic.q_networks == list(agent.critics)
    assert policy.critic.qf0 is agent.critic and policy.critic.qf1 is agent.critic2
    assert policy.critic_target.qf1 is agent.critic2_targ and policy.critic2 is agent.critic2
    assert model.critic.params is agent.critic.params and model.critic.sizes == (4, 8, 1)
    with pytest.raises(AttributeError):
        policy.critic.qf2
    assert policy.actor_target is agent.actor_targ
    obs, act = np.ones((2, 3)), np.full((2, 1), 0.5)
    q = model.critic(obs, act)                 # (Q_1, Q_2), each (B, 1), in the env's units
    assert len(q) == 2 and q[0].shape == (2, 1)
    np.testing.assert_array_equal(q[1], agent.critic2.forward(np.concatenate([obs, act], 1)))
    np.testing.assert_array_equal(model.critic.q1_forward(obs, act), q[0])
    obs = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(policy.predict(obs)[0], model.predict(obs)[0])
    policy.set_training_mode(True)
    assert policy.training
    model.actor.params[:] = 0.0                            # the live actor: its output is 0
    np.testing.assert_array_equal(model.predict(obs)[0], np.zeros((2, 1)))


def test_parameters_round_trip_through_set_and_files(tmp_path):
    model = small(TD3)
    model.learn(40)
    params = model.get_parameters()
    assert list(params) == ["policy", "actor.optimizer", "critic.optimizer"]     # SB3's
    assert list(params["policy"])[:2] == ["actor.mu.0.weight", "actor.mu.0.bias"]
    assert params["policy"]["critic.qf1.0.weight"].shape == (8, 4)      # torch's (out, in)
    np.testing.assert_array_equal(params["policy"]["actor.mu.0.weight"],
                                  model.actor.weights[0].T)
    assert params["actor.optimizer"]["state"][0]["step"] == model.native.agent.t_pi == 15
    assert params["critic.optimizer"]["param_groups"][0]["params"] == list(range(8))
    other = small(TD3, seed=1)
    other.set_parameters(params)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(other.predict(obs)[0], model.predict(obs)[0])
    ours, theirs = model.native.agent.state_dict(), other.native.agent.state_dict()
    for name in ours:                    # all but the sampler and TD3's delay clock
        if name not in ("rng_state", "counters"):
            np.testing.assert_array_equal(ours[name], theirs[name])
    np.testing.assert_array_equal(ours["counters"][:2], theirs["counters"][:2])   # Adam steps
    model.save(tmp_path / "m")
    loaded = TD3.load(tmp_path / "m")
    for name, value in params["policy"].items():
        np.testing.assert_array_equal(loaded.get_parameters()["policy"][name], value)
    fresh = small(TD3, seed=2)
    fresh.set_parameters(str(tmp_path / "m.zip"))
    np.testing.assert_array_equal(fresh.actor.params, model.actor.params)


def test_set_parameters_refuses_what_does_not_fit_and_changes_nothing():
    model = small(TD3)
    model.learn(20)
    params = model.get_parameters()
    before = model.native.agent.state_dict()
    with pytest.raises(ValueError, match="objects this model has not"):
        model.set_parameters(dict(params, optimizer={}), exact_match=False)
    with pytest.raises(ValueError, match="lacks"):
        model.set_parameters({"policy": params["policy"]})
    missing = dict(params, policy=dict(list(params["policy"].items())[:-1]))
    with pytest.raises(RuntimeError, match="lacks"):             # as torch's strict load
        model.set_parameters(missing)
    bad = dict(params, policy=dict(params["policy"], **{"actor.mu.0.bias": np.zeros(3)}))
    with pytest.raises(ParameterError, match="shape"):
        model.set_parameters(bad)
    adam = {"state": {}, "param_groups": [dict(params["actor.optimizer"]["param_groups"][0],
                                               betas=(0.5, 0.999))]}
    with pytest.raises(ValueError, match="betas"):
        model.set_parameters(dict(params, **{"actor.optimizer": adam}))
    after = model.native.agent.state_dict()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    zeros = {"actor.mu.0.weight": np.zeros((8, 3))}
    model.set_parameters({"policy": zeros}, exact_match=False)   # a part replaces its own
    assert not model.actor.weights[0].any() and model.actor.biases[0].any()
    model.policy.load_state_dict({k: v + 1 for k, v in params["policy"].items()})
    np.testing.assert_allclose(model.policy.state_dict()["critic.qf0.2.bias"],
                               params["policy"]["critic.qf0.2.bias"] + 1)
    fresh = small(TD3, seed=3)                          # a fresh model: Adam has no state yet
    assert fresh.get_parameters()["critic.optimizer"]["state"] == {}
    fresh.set_parameters(params)
    assert fresh.native.agent.t_q == model.native.agent.t_q


def test_sb3s_policy_and_actor_save_and_load(tmp_path):
    model = small(TD3)
    model.learn(20)
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    model.policy.save(tmp_path / "policy.pkl")         # SB3's name, exactly: every network
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.pkl"]
    with warnings.catch_warnings():                    # (no buffer to miss: not trained on)
        warnings.simplefilter("error")
        saved = type(model.policy).load(tmp_path / "policy.pkl")
    np.testing.assert_array_equal(saved.predict(obs, deterministic=True)[0],
                                  model.predict(obs)[0])
    whole = model.policy.state_dict()
    assert saved.state_dict().keys() == whole.keys()
    for name in whole:
        np.testing.assert_array_equal(saved.state_dict()[name], whole[name])
    actor = model.policy.actor                         # SB3's Actor: predict, save, load
    np.testing.assert_array_equal(actor.predict(obs)[0], model.predict(obs)[0])
    actor.save(tmp_path / "actor.pkl")                 # numddpg's policy file: NumPy alone
    alone = type(actor).load(tmp_path / "actor.pkl")
    np.testing.assert_array_equal(alone.predict(obs)[0], model.predict(obs)[0])
    np.testing.assert_allclose(numddpg.load_policy(tmp_path / "actor.pkl")(obs),
                               model.predict(obs)[0], rtol=1e-6)    # (NumPy's own rounding)
    assert alone.state_dict().keys() == {k for k in whole if k.startswith("actor.mu.")}
    assert type(model.policy).load(tmp_path / "actor.pkl").state_dict().keys() == \
        alone.state_dict().keys()                      # Policy.load reads a policy file too
    save_agent(tmp_path / "agent.npz", model.native.agent)     # another kind: refused
    with pytest.raises(CheckpointError, match="Policy.load reads"):
        type(model.policy).load(tmp_path / "agent.npz")


def test_policy_can_be_set_to_itself_or_torch_compiled(monkeypatch):
    model = small(TD3)
    before = model.actor.params.copy()
    model.policy = model.policy                        # SB3 code does this: nothing changes

    def compiled(obs):                                 # what torch.compile gives back
        return model.policy(obs)
    compiled._torchdynamo_orig_callable = model.policy
    with pytest.warns(UserWarning, match="Numba kernels"):
        model.policy = compiled
    np.testing.assert_array_equal(model.actor.params, before)
    with pytest.raises(TypeError, match="load_state_dict"):
        model.policy = small(TD3, seed=1).policy


class _Tensor:
    """Stands for a torch tensor (a wrapper of the array torch.from_numpy was given)."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array


def test_parameters_are_torch_tensors_when_the_program_uses_torch(monkeypatch):
    model = small(TD3)
    model.learn(20)
    monkeypatch.delitem(sys.modules, "torch", raising=False)     # (other tests import it)
    plain = model.get_parameters()
    assert isinstance(plain["policy"]["actor.mu.0.weight"], np.ndarray)   # no torch imported
    torch = types.ModuleType("torch")
    torch.from_numpy = _Tensor
    monkeypatch.setitem(sys.modules, "torch", torch)
    params = model.get_parameters()
    for tree in (params["policy"], model.policy.state_dict()):
        assert all(isinstance(v, _Tensor) for v in tree.values())
    state = params["critic.optimizer"]["state"][0]
    assert isinstance(state["exp_avg"], _Tensor) and isinstance(state["step"], _Tensor)
    assert params["actor.optimizer"]["param_groups"][0]["params"] == list(range(4))
    np.testing.assert_array_equal(params["policy"]["actor.mu.0.weight"].array,
                                  plain["policy"]["actor.mu.0.weight"])
    other = small(TD3, seed=1)
    other.set_parameters(params)                       # tensors are taken back
    np.testing.assert_array_equal(other.actor.params, model.actor.params)


def test_cuda_means_the_cpu_with_a_warning_as_sb3_without_cuda():
    with pytest.warns(UserWarning, match="the CPU is used"):
        model = small(TD3, device="cuda")
    assert model.device.type == "cpu"
    with pytest.raises(ValueError, match="CPU only"):
        small(TD3, device="mps")


def test_replay_buffer_under_sb3s_names_and_settable(tmp_path):
    model = small()
    model.learn(30)
    rb = model.replay_buffer
    assert rb.size() == 30 == rb.size and rb.pos == 30 and not rb.full
    assert rb.observations.shape == (500, 1, 3) and rb.rewards.shape == (500, 1)
    np.testing.assert_array_equal(rb.next_observations[:30, 0], rb.obs2[:30])
    other = small(seed=1)
    other.replay_buffer = model.replay_buffer
    assert other.replay_buffer.size() == 30
    other.replay_buffer = None
    assert other.replay_buffer is None
    with pytest.raises(ValueError, match="replay_buffer is None"):
        other.learn(5)
    other.save(tmp_path / "nobuf")                         # saved without one
    with pytest.warns(RuntimeWarning, match="without its replay buffer"):
        assert DDPG.load(tmp_path / "nobuf").replay_buffer.size() == 0
    with pytest.raises(ValueError, match="obs_dim"):
        other.replay_buffer = small(env="MountainCarContinuous-v0").replay_buffer


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------

def test_gradient_steps_zero_never_trains_and_minus_one_as_many_as_steps(tmp_path):
    model = small(gradient_steps=0)
    model.learn(60)
    assert model.n_updates == 0 and model.replay_buffer.size() == 60
    model.save(tmp_path / "g0")
    assert DDPG.load(tmp_path / "g0").gradient_steps == 0
    model = small(gradient_steps=-1, train_freq=4)
    model.learn(30)        # SB3's whole rollouts: to step 32, rounds after 12, 16, ..., 32
    assert model.n_updates == 24 and model.num_timesteps == 32     # (SB3 2.9: 24 and 32)


def test_batch_size_may_exceed_buffer_size():
    model = small(buffer_size=20, batch_size=64)
    model.learn(60)                   # minibatches of 64 rows drawn from 20, with replacement
    assert model.replay_buffer.size() == 20 and model.n_updates == 50     # steps 11..60
    assert np.all(np.isfinite(model.actor.params))


@pytest.mark.parametrize("Algo, n", [(DDPG, 2), (TD3, 1), (TD3, 3)])
def test_n_critics_of_policy_kwargs(Algo, n, tmp_path):
    """policy_kwargs n_critics sizes the critics (SB3's qf0, qf1, ...), their parameters and
    files; the target is the minimum over them (numddpg.kernels.update)."""
    model = small(Algo, policy_kwargs=dict(net_arch=[8], n_critics=n))
    model.learn(20)
    assert model.native.agent.n_critics == n == model.critic.n_critics
    names = {f"{net}.qf{k}.0.weight" for net in ("critic", "critic_target") for k in range(n)}
    params = model.get_parameters()["policy"]
    assert names <= set(params) and f"critic.qf{n}.0.weight" not in params
    model.save(tmp_path / "m")
    loaded = Algo.load(tmp_path / "m")
    assert loaded.policy_kwargs["n_critics"] == n and loaded.critic_target.n_critics == n
    for name, value in params.items():
        np.testing.assert_array_equal(loaded.get_parameters()["policy"][name], value)
    with pytest.raises(ValueError, match="lacks"):     # another number of critics: refused
        small(Algo, policy_kwargs=dict(net_arch=[8], n_critics=n + 1)).set_parameters(
            {"policy": params})


@pytest.mark.parametrize("n_critics", [0, 11, 1.5, "2"])
def test_bad_n_critics_is_refused(n_critics):
    with pytest.raises(ValueError, match=r"policy_kwargs\['n_critics'\] must be an integer"):
        small(TD3, policy_kwargs=dict(n_critics=n_critics))


@pytest.mark.parametrize("net_arch", [[], dict(pi=[], qf=[8]), dict(pi=[8], qf=[])])
def test_net_arch_without_hidden_layers_makes_linear_networks(net_arch):
    model = small(TD3, policy_kwargs=dict(net_arch=net_arch))
    pi = net_arch if isinstance(net_arch, list) else net_arch["pi"]
    qf = net_arch if isinstance(net_arch, list) else net_arch["qf"]
    assert model.actor.sizes == (3, *pi, 1) and model.critic.qf1.sizes == (4, *qf, 1)
    model.learn(30)
    assert model.n_updates == 20 and np.all(np.isfinite(model.actor.params))


class Shaped(gym.Env):
    """An env with an observation space of any kind and a (2, 2) Box action: the reward is the
    action's first entry (so the action's shape reaches the env)."""

    def __init__(self, observation_space):
        self.observation_space = observation_space
        self.action_space = spaces.Box(-1.0, 1.0, (2, 2), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert action.shape == (2, 2)
        self.t += 1
        return self.observation_space.sample(), float(action[0, 0]), False, self.t >= 10, {}


@pytest.mark.parametrize("space, flat", [(spaces.MultiBinary(3), 3),
                                         (spaces.MultiDiscrete([2, 3]), 5),
                                         (spaces.Box(-1, 1, (2, 3), np.float32), 6)])
def test_observations_are_preprocessed_as_sb3_does(space, flat):
    model = small(env=Shaped(space))
    model.learn(30)
    assert model.native.obs_dim == flat and model.native.act_dim == 4
    assert model.observation_space == space and model.action_space.shape == (2, 2)
    one = space.sample()
    action, _ = model.predict(one)
    assert action.shape == (2, 2)
    batch, _ = model.predict(np.stack([one, space.sample()]))
    assert batch.shape == (2, 2, 2)
    np.testing.assert_array_equal(batch[0], action)
    if isinstance(space, spaces.MultiDiscrete):        # one-hot per entry, as SB3
        obs = model.replay_buffer.obs[:30]
        np.testing.assert_array_equal(obs[:, :2].sum(1), 1)
        np.testing.assert_array_equal(obs[:, 2:].sum(1), 1)
    obs = model.get_env().reset()                      # the env's own observations
    assert obs.shape == (1, *space.shape)


class GlobalNoise:
    """An action noise as SB3's own classes are: drawn from NumPy's global generator."""

    def __call__(self):
        return np.random.normal(0.0, 0.1, 1)

    def reset(self):
        pass


def test_seed_seeds_the_global_generators_as_sb3_does():
    params = []
    for _ in range(2):
        np.random.seed(None)
        model = small(TD3, seed=3, action_noise=GlobalNoise())
        model.learn(60)
        params.append(model.actor.params.copy())
    np.testing.assert_array_equal(params[0], params[1])
