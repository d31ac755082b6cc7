"""The training loop's interface to other APIs (issue 16): SB3's callback protocol, any
update-to-data ratio, critics of their own widths, evaluation that never touches training."""
import numpy as np
import pytest

from numddpg.training.algorithms import DDPG, TD3, OffPolicyAlgorithm

TINY = dict(hidden_sizes=(8,), start_steps=50, update_after=50, update_every=10, batch_size=8,
            steps_per_epoch=100, num_test_episodes=1, replay_size=1000, chunks=1, seed=0)


class Recorder:
    """A callback that records the loop's calls and stops after ``stop_at`` steps."""

    def __init__(self, stop_at=None):
        self.calls, self.stop_at, self.n = [], stop_at, 0

    def on_training_start(self, locals_, globals_):
        self.calls.append("start")
        self.model = locals_["self"]

    def update_locals(self, locals_):
        self.locals = locals_

    def on_step(self):
        self.n += 1
        self.calls.append("step")
        assert self.locals["new_obs"].shape == (1, 3) and self.locals["actions"].shape == (1, 1)
        assert self.locals["rewards"].shape == (1,) and self.locals["dones"].shape == (1,)
        return self.stop_at is None or self.n < self.stop_at

    def on_rollout_start(self):
        self.calls.append("rollout_start")

    def on_rollout_end(self):
        self.calls.append("rollout_end")

    def on_training_end(self):
        self.calls.append("end")


def test_callback_protocol_order_and_stop(tmp_path):
    cb = Recorder()
    model = DDPG("Pendulum-v1", log=False, **TINY).learn(70, progress_bar=False, callback=cb)
    assert cb.model is model and cb.n == 70 and model.num_timesteps == 70
    calls = cb.calls
    assert calls[:2] == ["start", "rollout_start"] and calls[-1] == "end"
    # training rounds at t = 50 and 60: after that step, rollout_end, then rollout_start
    rounds = [i for i, c in enumerate(calls) if c == "rollout_end"]
    assert len(rounds) == 3 and all(calls[i + 1] == "rollout_start" for i in rounds)
    assert calls[:rounds[0]].count("step") == 50
    stopper = Recorder(stop_at=123)
    model = DDPG("Pendulum-v1", run_dir=tmp_path / "run", **TINY)
    model.learn(1000, progress_bar=False, callback=stopper)
    assert model.t == 123 and stopper.calls[-1] == "end"
    assert OffPolicyAlgorithm.load(tmp_path / "run" / "checkpoint.npz").t == 123


@pytest.mark.parametrize("update_every, gradient_steps", [(10, None), (10, 1), (10, 40),
                                                          (1, 3), (7, 2)])
def test_gradient_steps_set_the_update_to_data_ratio(update_every, gradient_steps):
    kw = dict(TINY, update_every=update_every, gradient_steps=gradient_steps)
    model = DDPG("Pendulum-v1", log=False, **kw).learn(200, progress_bar=False)
    rounds = len([t for t in range(50, 201) if t % update_every == 0])
    assert model.agent.q_optim.t == rounds * (gradient_steps or update_every)


@pytest.mark.parametrize("cls", [DDPG, TD3])
def test_critics_of_their_own_widths_round_trip(cls, tmp_path):
    model = cls("Pendulum-v1", log=False, **dict(TINY, hidden_sizes=(8,), qf_hidden_sizes=(6, 5)))
    model.learn(100, progress_bar=False)
    critics = [model.agent.critic] + ([model.agent.critic2] if cls is TD3 else [])
    assert all(list(c.sizes) == [4, 6, 5, 1] for c in critics)
    assert list(model.agent.actor.sizes) == [3, 8, 1]
    loaded = cls.load(model.save(tmp_path / "m.npz"))
    assert np.array_equal(loaded.agent.critic.params, model.agent.critic.params)
    assert loaded.hyperparameters["qf_hidden_sizes"] == (6, 5)


def test_evaluation_between_learn_calls_changes_no_bit_of_training():
    plain = DDPG("Pendulum-v1", log=False, **TINY)
    plain.learn(150, progress_bar=False).learn(150, progress_bar=False)
    probed = DDPG("Pendulum-v1", log=False, **TINY)
    probed.learn(150, progress_bar=False)
    probed.evaluate(3)
    probed.evaluate(2, env="Pendulum-v1", seed=5)
    probed.learn(150, progress_bar=False)
    for a, b in zip(plain.agent.state_dict().values(), probed.agent.state_dict().values()):
        assert np.array_equal(a, b)
    assert plain.rng.bit_generator.state == probed.rng.bit_generator.state


def test_evaluate_takes_any_env_with_the_same_spaces():
    import gymnasium as gym
    model = DDPG("Pendulum-v1", log=False, **TINY)
    wrapped = gym.wrappers.TimeLimit(gym.make("Pendulum-v1"), max_episode_steps=20)
    assert model.evaluate(2, env=wrapped, seed=0) == model.evaluate(2, env=wrapped, seed=0)
    with pytest.raises(ValueError, match="obs/act dims"):
        model.evaluate(1, env="MountainCarContinuous-v0")


def test_a_typo_in_a_preset_dict_is_an_error():
    with pytest.raises(TypeError, match="'batchsize' \\(did you mean 'batch_size'\\?\\)"):
        DDPG("Pendulum-v1", log=False, preset={"batchsize": 32})
    model = DDPG("Pendulum-v1", log=False, preset={"batch_size": 32, "total_steps": 500})
    assert model.batch_size == 32 and model.preset_total_steps == 500


def test_set_env_continues_on_another_instance_and_refuses_other_spaces():
    import gymnasium as gym
    model = DDPG("Pendulum-v1", log=False, **TINY).learn(100, progress_bar=False)
    model.set_env(gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync"))
    model.learn(100, progress_bar=False)
    assert model.n_envs == 2 and model.t == 200
    with pytest.raises(ValueError, match="set_env"):
        model.set_env("MountainCarContinuous-v0")


def test_the_test_env_is_made_only_when_needed():
    import gymnasium as gym

    class Uncopyable(gym.Wrapper):
        def __deepcopy__(self, memo):
            raise TypeError("no copies")

    env = Uncopyable(gym.make("Pendulum-v1"))
    env.unwrapped.spec = None
    model = DDPG(env, log=False, **dict(TINY, num_test_episodes=0)).learn(100, progress_bar=False)
    assert model.t == 100 and model._test_env is None
    with pytest.raises(ValueError, match="test instance"):
        model.evaluate(1)
    assert np.isfinite(model.evaluate(1, env="Pendulum-v1")[0])
