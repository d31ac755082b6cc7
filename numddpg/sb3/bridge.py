"""What numddpg's training loop calls during an SB3 model's learn() (the loop's callback
protocol, numddpg.training.loop), turned into what SB3's OffPolicyAlgorithm does at the same
moments:

    update_locals(locals)   the step's locals as SB3's callbacks read them (``self`` the SB3
                            model, ``infos`` a list of dicts, with VecNormalize ``new_obs``
                            and ``rewards`` as it returned them, normalized); an ended
                            episode goes into ``ep_info_buffer`` and every ``log_interval``
                            episodes the model dumps its logs (``dump_logs``)
    on_rollout_end()        before a training round: the learning rate of its updates
                            (SB3's schedule at the current progress_remaining)
    on_rollout_start()      after a training round: its train/ keys into the logger
    the rest                handed on to the user's callback, if any
"""
import time

from .evaluation import sub_info
from .vecenv import StepInfos


class Bridge:
    """The loop's callback for one learn() of ``model`` (numddpg.sb3.model.OffPolicySB3), with
    the user's SB3 ``callback`` (or None) and SB3's ``learn_locals``."""

    def __init__(self, model, callback, log_interval, learn_locals):
        self.model, self.callback, self.log_interval = model, callback, log_interval
        self.learn_locals = learn_locals
        self.start_time = time.perf_counter()
        self.updates_seen = model.n_updates

    def on_training_start(self, locals_, globals_):
        if self.callback is not None:
            self.callback.on_training_start(dict(self.learn_locals, self=self.model), globals_)

    def update_locals(self, locals_):
        model = self.model
        locals_["self"] = model
        infos = locals_["infos"]
        returned = None
        if isinstance(infos, StepInfos):       # an SB3 VecEnv's own list
            infos, returned = infos.per_env, infos.returned
            locals_["infos"] = infos
        elif isinstance(infos, dict):          # a gymnasium vector env's: SB3 hands a list
            infos = locals_["infos"] = [sub_info(infos, i) for i in range(model.n_envs)]
        if model.native.n_envs:
            self._episode_ends(locals_["rewards"], locals_["dones"], infos)
        else:
            ret, length = model._episode_ret, model._episode_len
            ret[0] += locals_["rewards"][0]
            length[0] += 1
            if locals_["dones"][0]:
                self._episode_end(0, infos[0])
        if returned is not None:               # the loop stepped a VecNormalize's originals
            locals_["new_obs"], locals_["rewards"] = returned
        if self.callback is not None:
            self.callback.update_locals(locals_)

    def _episode_ends(self, rewards, dones, infos):
        """A vector env's step: n steps, but in NEXT_STEP mode an env's step after its episode
        ended is its reset (no step of any episode)."""
        model = self.model
        for i in range(model.n_envs):
            if model._resetting[i]:
                model._resetting[i] = False
                continue
            model._episode_ret[i] += rewards[i]
            model._episode_len[i] += 1
            if dones[i]:
                self._episode_end(i, infos[i])
                model._resetting[i] = model._next_step_reset

    def _episode_end(self, i, info):
        """Env i's episode ended: its return and length into ``ep_info_buffer``, from its
        Monitor's info["episode"] when it has one (SB3's source: with VecNormalize, the
        rewards before normalization), else from the rewards stepped."""
        model = self.model
        episode = info.get("episode")
        if isinstance(episode, dict) and "r" in episode and "l" in episode:
            ret, length = float(episode["r"]), int(episode["l"])
        else:
            ret, length = float(model._episode_ret[i]), int(model._episode_len[i])
        model.ep_info_buffer.append({"r": round(ret, 6), "l": length,
                                     "t": round(time.perf_counter() - self.start_time, 6)})
        if info.get("is_success") is not None:
            model.ep_success_buffer.append(info["is_success"])
        model._episode_ret[i], model._episode_len[i] = 0.0, 0
        model._episode_num += 1
        if model._episode_num % self.log_interval == 0:
            model.dump_logs()

    def on_step(self):
        return self.callback.on_step() if self.callback is not None else True

    def on_rollout_start(self):
        """At the loop's start and after every training round (whose statistics are the run
        state's last ``update_stats``)."""
        model = self.model
        if model.n_updates != self.updates_seen:
            self.updates_seen = model.n_updates
            model.record_training(model.native.state.update_stats[-1])
        if self.callback is not None:
            self.callback.on_rollout_start()

    def on_rollout_end(self):
        """Just before a training round (the loop's only call of it): the user's callback's
        on_rollout_end, then the round's learning rate from the schedule, as SB3's train()
        sets it at the current progress_remaining."""
        if self.callback is not None:
            self.callback.on_rollout_end()
        self.model._update_learning_rate()

    def on_training_end(self):
        if self.callback is not None:
            self.callback.on_training_end()
