"""numddpg.sb3's learning-rate schedules: SB3's rule (the schedule's value at the current
progress_remaining = 1 - num_timesteps / total_timesteps when a training round begins, for all
its updates), the value logged, and schedules saved as data and rebuilt (numddpg.sb3.schedules).
SB3's and the Zoo's own classes are checked when they are installed."""
import math
import warnings

import numpy as np
import pytest

from numddpg.files.checkpoint import CheckpointError
from numddpg.sb3 import DDPG, TD3, BaseCallback, ConstantSchedule, FloatSchedule, LinearSchedule
from numddpg.sb3 import schedules as S

TINY = dict(net_arch=[8])
SMALL = dict(learning_starts=50, batch_size=16, buffer_size=1000, train_freq=4,
             gradient_steps=2, policy_kwargs=TINY, seed=0)


@pytest.fixture(autouse=True)
def _one_chunk(monkeypatch):
    """One row chunk: no per-shape calibration (numddpg.kernels.threads)."""
    monkeypatch.setenv("NUMDDPG_CHUNKS", "1")


class Rounds(BaseCallback):
    """After every training round (on_rollout_start): num_timesteps, the agent's learning
    rates for that round and the model's current_learning_rate."""

    def __init__(self):
        super().__init__()
        self.rounds, self.seen = [], 0

    def _on_step(self):
        return True

    def _on_rollout_start(self):
        if self.model.n_updates != self.seen:
            self.seen = self.model.n_updates
            self.rounds.append((self.model.num_timesteps, *self.model.native.agent.learning_rates,
                                self.model.current_learning_rate))


class Recorder:
    """A logger by hand (SB3's record/dump): every train/learning_rate recorded."""

    def __init__(self):
        self.lrs = []

    def record(self, key, value, exclude=None):
        if key == "train/learning_rate":
            self.lrs.append(value)

    def dump(self, step=0):
        pass


@pytest.mark.parametrize("cls", [DDPG, TD3])
def test_each_training_round_steps_with_the_schedule_at_its_progress(cls):
    """SB3's train(): lr = schedule(1 - num_timesteps / total_timesteps) at the round, for
    both networks, logged as train/learning_rate; a second learn() without reset counts
    progress over both (total = 200 + 100), one with reset from 0 again."""
    schedule = LinearSchedule(1e-3, 1e-4, 0.6)
    model = cls("MlpPolicy", "Pendulum-v1", learning_rate=schedule, **SMALL)
    logger = Recorder()
    model.set_logger(logger)
    assert model.current_learning_rate == 1e-3
    assert (model.native.pi_lr, model.native.q_lr) == (1e-3, 1e-3)    # schedule(1): recorded
    cb = Rounds()
    model.learn(200, callback=cb)
    # rounds at num_timesteps 52, 56, ..., 200 (SB3 trains once num_timesteps > 50)
    assert [r[0] for r in cb.rounds] == list(range(52, 201, 4))
    for t, pi_lr, q_lr, current in cb.rounds:
        assert pi_lr == q_lr == current == schedule(1.0 - t / 200)     # the same float ops
    assert logger.lrs == [r[3] for r in cb.rounds]
    assert len({r[1] for r in cb.rounds}) > 15                          # it does vary
    cb = Rounds()
    cb.seen = model.n_updates
    model.learn(100, callback=cb, reset_num_timesteps=False)
    assert [r[0] for r in cb.rounds] == list(range(204, 301, 4))
    assert all(r[1] == schedule(1.0 - r[0] / 300) for r in cb.rounds)
    cb = Rounds()
    cb.seen = model.n_updates
    model.learn(40, callback=cb)                           # num_timesteps from 0, total 40
    assert [r[0] for r in cb.rounds] == list(range(4, 41, 4))
    assert all(r[1] == schedule(1.0 - r[0] / 40) for r in cb.rounds)


def test_a_varying_schedule_trains_differently_and_a_constant_one_as_its_number():
    ref = TD3("MlpPolicy", "Pendulum-v1", learning_rate=5e-4, **SMALL).learn(120)
    const = TD3("MlpPolicy", "Pendulum-v1", learning_rate=ConstantSchedule(5e-4), **SMALL)
    const.learn(120)
    lin = TD3("MlpPolicy", "Pendulum-v1", learning_rate=lambda p: 5e-4 * p, **SMALL).learn(120)
    ours, theirs = const.get_parameters()["policy"], ref.get_parameters()["policy"]
    for name in ours:                                  # a constant schedule: bit for bit
        np.testing.assert_array_equal(ours[name], theirs[name])
    assert not np.array_equal(lin.native.agent.actor.params, ref.native.agent.actor.params)


def _continues_identically(model, loaded, cls, steps=100):
    """Both models learn ``steps`` more (no reset: the schedule's progress continues) and end
    bit-identical."""
    model.learn(steps, reset_num_timesteps=False)
    loaded.learn(steps, reset_num_timesteps=False)
    ours, theirs = loaded.get_parameters()["policy"], model.get_parameters()["policy"]
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@pytest.mark.parametrize("schedule", [
    LinearSchedule(1e-3, 1e-4, 0.6), ConstantSchedule(4e-4), FloatSchedule(2e-4),
    FloatSchedule(LinearSchedule(1e-3, 0.0, 1.0)), S.SimpleLinearSchedule(7e-4)])
def test_known_schedules_are_saved_as_data_and_rebuilt(tmp_path, schedule):
    model = TD3("MlpPolicy", "Pendulum-v1", learning_rate=schedule, **SMALL).learn(200)
    model.save(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no warning: nothing is lost
        loaded = TD3.load(tmp_path / "m")
    assert type(loaded.learning_rate) is type(schedule)
    assert repr(loaded.learning_rate) == repr(schedule)
    assert all(loaded.lr_schedule(p) == float(schedule(p)) for p in np.linspace(0, 1, 11))
    _continues_identically(model, loaded, TD3)


def test_another_callable_keeps_its_last_value_and_says_so(tmp_path):
    def schedule(progress_remaining):
        return 1e-3 * progress_remaining ** 2 + 1e-5

    model = DDPG("MlpPolicy", "Pendulum-v1", learning_rate=schedule, **SMALL).learn(180)
    assert model.current_learning_rate == schedule(1.0 - 180 / 180) == 1e-5  # the last round's
    model.learn(100)                                   # another learn: progress from 1 again
    last = model.current_learning_rate
    model.save(tmp_path / "m")
    with pytest.warns(UserWarning, match=r"learning_rate was <function .*schedule.* trains on "
                                         rf"with the constant learning rate {last!r}"):
        loaded = DDPG.load(tmp_path / "m")
    assert loaded.learning_rate == last and loaded.lr_schedule(0.3) == last
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = DDPG.load(tmp_path / "m", custom_objects={"learning_rate": schedule})
    assert again.learning_rate is schedule
    assert DDPG.load(tmp_path / "m", learning_rate=3e-4).learning_rate == 3e-4
    for bad, match in [(-1e-3, "custom_objects"), ("fast", "custom_objects"),
                       (lambda _: None, "numbers")]:
        with pytest.raises((TypeError, ValueError), match=match):
            DDPG.load(tmp_path / "m", custom_objects={"learning_rate": bad})
    with pytest.warns(UserWarning, match="custom_objects names"):   # not in the file: as SB3,
        DDPG.load(tmp_path / "m", custom_objects={"policy": None,     # ignored (and said so)
                                                  "learning_rate": schedule})


@pytest.mark.parametrize("schedule, error, match", [
    (lambda _: "1e-3", TypeError, "numbers"), (lambda _: None, TypeError, "numbers"),
    (lambda _: True, TypeError, "numbers"), (lambda _: 0.0, ValueError, "positive"),
    (lambda p: math.nan, ValueError, "finite number >= 0"), ("1e-3", TypeError, "schedule")])
def test_a_schedule_must_give_a_positive_number_at_the_start(schedule, error, match):
    with pytest.raises(error, match=match):
        TD3("MlpPolicy", "Pendulum-v1", learning_rate=schedule, **SMALL)


def test_a_negative_learning_rate_during_training_stops_it_naming_the_schedule():
    model = TD3("MlpPolicy", "Pendulum-v1", learning_rate=lambda p: 1e-3 * (2 * p - 1), **SMALL)
    with pytest.raises(ValueError, match=r"returned -.* at progress_remaining=0.4.*finite "
                                         r"number >= 0"):
        model.learn(100)


# --- the records -------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, rec", [
    (ConstantSchedule(3e-4), {"type": "constant", "val": 3e-4}),
    (ConstantSchedule(np.float32(3e-4)), {"type": "constant", "val": float(np.float32(3e-4))}),
    (LinearSchedule(1e-3, 1, 0.5), {"type": "linear", "start": 1e-3, "end": 1.0,
                                    "end_fraction": 0.5}),
    (FloatSchedule(1e-3), {"type": "float", "value_schedule": {"type": "constant",
                                                               "val": 1e-3}}),
    (S.SimpleLinearSchedule(7e-4), {"type": "simple_linear", "initial_value": 7e-4}),
    (LinearSchedule(np.float32(1e-3), 0.0, 1.0), None),      # float32 arithmetic: not ours
    (lambda p: 1e-3 * p, None), (max, None)])
def test_records_of_schedules(schedule, rec):
    assert S.record(schedule) == rec
    if rec is not None:
        rebuilt = S.rebuild(rec, "f")
        assert all(float(rebuilt(p)) == float(schedule(p)) for p in np.linspace(0, 1, 21))


@pytest.mark.parametrize("rec", [
    None, [], {"type": "cosine"}, {"type": "constant"}, {"type": "constant", "val": "1e-3"},
    {"type": "constant", "val": True}, {"type": "constant", "val": 1e-3, "extra": 1},
    {"type": "linear", "start": 1e-3, "end": 0.0, "end_fraction": 0.0},
    {"type": "linear", "start": math.inf, "end": 0.0, "end_fraction": 1.0},
    {"type": "float", "value_schedule": {"type": "float"}},
    {"type": "float", "value_schedule": {"type": "constant", "val": 1.0}, "x": 1}])
def test_a_doctored_record_is_refused(rec):
    with pytest.raises(CheckpointError, match="f: "):
        S.rebuild(rec, "f")


@pytest.mark.parametrize("rec", [
    {"type": "callable", "repr": "f", "last": -1.0}, {"type": "callable", "repr": 3, "last": 0.1},
    {"type": "callable", "repr": "f"}, {"type": "callable", "repr": "f", "last": math.nan}])
def test_a_doctored_callable_record_is_refused(rec):
    with pytest.raises(CheckpointError, match="f: "):
        S.learning_rate_from_record(rec, "f")


def test_sb3s_and_the_zoos_schedules_are_recorded():
    utils = pytest.importorskip("stable_baselines3.common.utils")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # (SB3's deprecated functions warn)
        cases = [(utils.ConstantSchedule(1e-3), "constant"),
                 (utils.LinearSchedule(1e-3, 1e-5, 0.3), "linear"),
                 (utils.FloatSchedule(3e-4), "float"),
                 (utils.FloatSchedule(utils.LinearSchedule(1e-3, 0, 1)), "float"),
                 (utils.get_linear_fn(1e-3, 0, 0.7), "linear"),
                 (utils.constant_fn(5e-4), "constant")]
    for schedule, kind in cases:
        rec = S.record(schedule)
        assert rec is not None and rec["type"] == kind, schedule
        rebuilt = S.rebuild(rec, "f")
        assert all(float(rebuilt(p)) == float(schedule(p)) for p in np.linspace(0, 1, 101))
    zoo = pytest.importorskip("rl_zoo3.utils")
    rec = S.record(zoo.linear_schedule(7.3e-4))        # the Zoo's lin_7.3e-4
    assert rec == {"type": "simple_linear", "initial_value": 7.3e-4}
