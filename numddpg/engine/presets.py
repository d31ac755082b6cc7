"""Per-environment hyperparameters that learn well and fast, each value with the reason for it.

``DDPG(env, preset="auto")`` (the default) applies ``PRESETS[env_id]`` on top of the reference
defaults of docs/reference.md §2, and any hyperparameter passed explicitly wins over
both.  ``preset="none"`` gives the reference defaults alone.  A preset may also name
``total_steps``, the budget ``learn()`` and ``numddpg train`` use when none is given.

Measurements behind the choices are in bench/RESULTS.md ("Pendulum learning").
"""

PRESETS = {
    "Pendulum-v1": {
        # Small nets: the state is 3-D and the optimal policy a smooth 1-D map; (64, 64) learns
        # as well as SB3's (400, 300) here at ~1/10 of the update cost on a CPU.
        "hidden_sizes": (64, 64),
        # Pendulum's reward is dense and the swing-up takes ~100 steps: gamma 0.98 (SB3 zoo)
        # shortens the horizon (1/(1-gamma) = 50 steps), which makes the critic's targets
        # smaller and better conditioned than 0.99's.
        "gamma": 0.98,
        # 20k steps total: the whole run fits; the reference's 1M buffer would only waste memory.
        "replay_size": 100_000,
        # Random actions for the first 1,000 steps (5 episodes) cover the state space well
        # enough; the reference's 10,000 would spend half of a 20k-step budget on random play.
        "start_steps": 1000,
        # Start updating once the random episodes are in the buffer.
        "update_after": 1000,
        # Ratio of one update per env step, as the reference; bursts of 50 keep the Python
        # overhead per update negligible.
        "update_every": 50,
        # Batch 64 (the DDPG paper's): in our 10-seed sweep it reached the same 20k-step return
        # as 100 or 128 (about -150) at 2/3 of the time per update.
        "batch_size": 64,
        # A progress row and 10 deterministic test episodes every 1,000 steps (5 episodes):
        # the learning campaign's protocol (bench/RESULTS.md) scores a seed by the mean of its
        # last 10 evaluations, which here covers the second half of the 20k-step budget.
        "steps_per_epoch": 1000,
        "num_test_episodes": 10,
        # One BLAS thread: with (64, 64) nets the matrices are tiny, and a second thread only
        # adds synchronisation (and collapses when another process shares the 2 cores).
        "blas_threads": 1,
        # The learning bar of bench/pendulum.py: 20,000 env steps.
        "total_steps": 20_000,
    },
}


# Shared by the MuJoCo locomotion tasks.  DDPG: Spinning Up's benchmark settings, which are
# the reference defaults of docs/reference.md §2 ((256, 256), lr 1e-3 for both, batch
# 100, 10k random steps, 50 updates every 50 steps) and reach ~10,100 on HalfCheetah at 1M.
# TD3: Fujimoto et al.'s published configuration as Spinning Up runs it (the same nets, lrs and
# batch, target noise 0.2, clip 0.5, policy delay 2); the TD3 author's later repository uses
# lr 3e-4, batch 256 and 25k random steps, which costs 2.5x more per update here for about the
# same 1M-step returns (CleanRL's TD3 figures in docs/reference.md §3 come from those settings).
# Measured with these (bench/RESULTS.md, 1M steps): HalfCheetah DDPG 11,514, TD3 9,107 (2 seeds);
# Hopper TD3 3,336; Walker2d TD3 3,448, under CleanRL's 4,058.  The later settings on Walker2d
# TD3 reach 4,135 (2 seeds: 4,646 and 3,625; bench/RESULTS.md): Walker2d's preset below.
_MUJOCO = {
    "hidden_sizes": (256, 256),
    "batch_size": 100,
    "start_steps": 10_000,
    "update_after": 1000,
    "update_every": 50,
    # An evaluation (10 test episodes) every 5,000 steps, 200 over 1M steps: the TD3 paper's
    # protocol, whose figure for a seed is the mean of its last 10 evaluations.
    "steps_per_epoch": 5000,
    "total_steps": 1_000_000,
}

# Box2D tasks, from the RL Baselines3 Zoo's tuned DDPG/TD3 (hyperparams/ddpg.yml, td3.yml):
# (400, 300) nets, gamma 0.98, a 200k buffer, 10k random steps, Gaussian noise 0.1, lr 1e-3,
# batch 256 (SB3's default), one update per env step (the zoo runs an episode's worth of updates
# after each episode; here the reference's bursts of 50 every 50 steps: the same 1:1 ratio).
_BOX2D = {
    "hidden_sizes": (400, 300),
    "gamma": 0.98,
    "replay_size": 200_000,
    "start_steps": 10_000,
    "update_after": 10_000,
    "act_noise": 0.1,
    "batch_size": 256,
    "steps_per_epoch": 10_000,
}

PRESETS.update({
    # SB3 zoo DDPG (93.5 at 300k): the reward only pays at the hilltop, so exploration must be
    # temporally correlated and large: Ornstein-Uhlenbeck noise with sigma 0.5 half-ranges
    # (theta 0.15, dt 1e-2), (400, 300) nets, batch 256, lr 1e-3; SB3 starts learning after
    # 100 steps with no random phase, so start_steps is small here too.
    "MountainCarContinuous-v0": {
        "hidden_sizes": (400, 300), "noise": "ou", "ou_sigma": 0.5, "batch_size": 256,
        "start_steps": 100, "update_after": 100, "steps_per_epoch": 10_000,
        "total_steps": 300_000,
    },
    # SB3 zoo DDPG (230 +- 92 at 300k) but with batch 100 (Spinning Up's and the TD3 paper's)
    # instead of 256: on the same seeds 0 and 1 it ended better (final policies' 100-episode
    # means 229.8 and 174.6 against 169.2 and 63.8) at half the update cost (bench/RESULTS.md,
    # which also lists the variants tried and found no better: actor lr 1e-4, gamma 0.99, a 1M
    # buffer).  Over seeds 0-3: 179.2 +- 51.0 (10 episodes), 215.4 +- 27.7 (100 episodes).
    # An evaluation every 5,000 steps as on MuJoCo (the learning campaign's protocol).
    "LunarLanderContinuous-v3": {**_BOX2D, "batch_size": 100, "steps_per_epoch": 5000,
                                 "total_steps": 300_000},
    # SB3 zoo DDPG/TD3 use the same settings for 1M steps.
    "BipedalWalker-v3": {**_BOX2D, "total_steps": 1_000_000},
    "HalfCheetah-v5": dict(_MUJOCO),
    "Hopper-v5": dict(_MUJOCO),
    # Walker2d: the TD3 author's later settings (lr 3e-4 for both nets, batch 256, 25k random
    # steps before the first update), chosen before the learning campaign's seeds started:
    # with them TD3 reached 4,135 over 2 seeds (4,646, 3,625) where the shared settings reached
    # 3,448 on one (bench/RESULTS.md), at ~2.5x the update cost.
    "Walker2d-v5": {**_MUJOCO, "pi_lr": 3e-4, "q_lr": 3e-4, "batch_size": 256,
                    "start_steps": 25_000, "update_after": 25_000},
    # Ant's 105-D observation includes contact forces; the same settings as the others
    # (Spinning Up and the TD3 paper used one configuration for every MuJoCo task).
    "Ant-v5": dict(_MUJOCO),
})

# Goal-conditioned Fetch tasks (gymnasium-robotics, the ``robotics`` extra) with hindsight
# experience replay: the settings of Andrychowicz et al. 2017 and Plappert et al. 2018
# (docs/reference.md, "Other published settings").  Where the papers' words leave a definition
# open, their released code (OpenAI Baselines' ``her``) settles it (docs/math.md, sections 4, 5
# and 10).  Left out: the clip of raw observations to +-200 before normalization (Plappert et
# al. 2018), which would change the normalization's map and the policy file for no effect
# here: under random actions (100 episodes each) the largest |x| of an observation entry is
# 1.64 in FetchReach-v4 and 1.76 in FetchPush-v4 (bench/RESULTS.md, "Hindsight experience
# replay (FetchReach-v4)").
_FETCH = {
    # HER with the "future" strategy and k = 4 (Andrychowicz et al. 2017, section 4.5: the best
    # strategy; k = 4 relabels 80 % of the replayed transitions)
    "her": "future",
    "her_k": 4,
    # 3 hidden layers of 256 for actor and critic (Plappert et al. 2018, appendix)
    "hidden_sizes": (256, 256, 256),
    # Adam with learning rate 1e-3 for both networks (Plappert et al. 2018)
    "pi_lr": 1e-3,
    "q_lr": 1e-3,
    # polyak-averaging coefficient 0.95 (Plappert et al. 2018)
    "polyak": 0.95,
    # discount 0.98 = 1 - 1/T with T = 50 steps per episode (Plappert et al. 2018)
    "gamma": 0.98,
    # a minibatch of 256 transitions (Plappert et al. 2018, per worker)
    "batch_size": 256,
    # a buffer of 10^6 transitions (Plappert et al. 2018)
    "replay_size": 1_000_000,
    # observations and goals normalized by running mean and std, clipped to +-5 (Plappert et
    # al. 2018)
    "normalize_obs": True,
    "obs_clip": 5.0,
    # the std under the normalization floored at 0.01 (sqrt(var + 1e-4); the papers' code:
    # max(std, 0.01)).  With SB3's 1e-8 a relabelled goal's height in FetchPush-v4 (the object
    # resting 0.085 mm above the table-top goals, whose height never varies) normalizes to
    # ~0.8 where every real goal's is 0, and five runs stayed at chance to 300k steps
    # (docs/math.md section 10, bench/RESULTS.md)
    "obs_norm_eps": 1e-4,
    # Gaussian exploration noise of std 0.2 of the action range's half (Plappert et al. 2018)
    "act_noise": 0.2,
    # with probability 0.3 a behaviour action is uniform in the action box instead (Plappert et
    # al. 2018, "probability of random actions"; the noise is drawn before the coin, as in
    # their code)
    "random_eps": 0.3,
    # the action L2 penalty: the actor's loss adds 1.0 times the mean of u^2, u its tanh
    # output (Plappert et al. 2018, "action L2 norm coefficient"; the mean over rows and action
    # dims of (a / max_u)^2 in their code)
    "action_l2": 1.0,
    # the TD target clipped to [-1 / (1 - gamma), 0], the range of the return of rewards in
    # {-1, 0} (Andrychowicz et al. 2017, appendix; clip_return in their code)
    "clip_return": True,
    # 50 minibatch updates after each episode of 50 steps: one update per env step (Spinning
    # Up's and SB3's ratio), where the papers run 40 after every 2 episodes (0.4 per step); with
    # the papers' 20 per episode, seeds 0-4 of FetchReach-v4 reached a success of 1.00, 1.00,
    # 0.99, 1.00 and 0.94 at 10,000 steps, with 50 1.00 on each (bench/RESULTS.md)
    "update_every": 50,
    "gradient_steps": 50,
    # random actions and no updates for the first 1,000 steps (20 episodes; numddpg's, not the
    # papers', which act with the noisy actor from the start: with the relabelled goals of these
    # episodes the first updates have successes to learn from)
    "start_steps": 1000,
    "update_after": 1000,
    # an epoch of 1,000 steps (20 episodes) ends with 10 deterministic test episodes, whose
    # success rate progress.csv records (TestSuccessRate; the papers test 10 per worker)
    "steps_per_epoch": 1000,
    "num_test_episodes": 10,
}

PRESETS.update({
    # Reaching is learned within a few epochs of the papers (bench/RESULTS.md, "Hindsight
    # experience replay (FetchReach-v4)": 10,000 steps)
    "FetchReach-v4": {**_FETCH, "total_steps": 10_000},
    # Pushing: the papers' update schedule, that of their 19 workers (Plappert et al. 2018;
    # OpenAI Baselines' her.py), computed in one process: each worker's cycle is 2 episodes,
    # then 40 updates on 256 rows per worker with the gradients averaged over the workers, then
    # the target moved by polyak 0.95; here, after every 1,900 env steps (19 x 2 x 50), 40
    # updates on one minibatch of 19 x 256 = 4,864 rows, the target averaged at 0.95^(1/40)
    # after each (0.95 over the 40).  Seeds 0 and 1 reached a success of 0.92 and 0.95 at 1M
    # steps (final policy, 100 episodes), each in 77 min on one core.  Of the schedules tried it
    # is the cheapest per env step: 102 row gradients (FetchReach's one update of 256 per step:
    # 256), in minibatches large enough to run at the matrix products' speed (bench/RESULTS.md,
    # "Hindsight experience replay (FetchPush-v4)").
    "FetchPush-v4": {**_FETCH, "total_steps": 1_000_000, "batch_size": 19 * 256,
                     "update_every": 19 * 2 * 50, "gradient_steps": 40,
                     "polyak": 0.95 ** (1 / 40)},
})


def preset_for(env_id):
    """The preset of ``env_id`` as a new dict, or {} if there is none.  One preset serves both
    algorithms: the published DDPG and TD3 configurations for these tasks differ only in TD3's
    own three hyperparameters, whose defaults (0.2, 0.5, 2) are the published ones."""
    return dict(PRESETS.get(env_id, {}))
