"""numddpg.kernels.gradcheck and the ``numddpg gradcheck`` command: the checks pass on the real kernels,
and fail when a gradient is deliberately broken (a check that cannot fail proves nothing).
"""
import re
import subprocess
import sys

import numpy as np
import pytest

from numddpg.kernels import gradcheck as gc
from numddpg.engine.agents import DDPGAgent
from numddpg.tools import gradcheck as gradcheck_command
from numddpg.tools.cli import main


# --- the generic helpers ---------------------------------------------------------------------

def test_rel_error():
    assert gc.rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    # max|a - b| / max(|a| + |b|) = 0.1 / 4.1 (the denominator is the largest element's)
    assert gc.rel_error([1.0, 2.0], [1.0, 2.1]) == pytest.approx(0.1 / 4.1, rel=1e-12)
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0          # 1e-8 floor, no 0/0
    assert gc.rel_error([1e-9], [0.0]) == pytest.approx(1e-9 / 1e-8)
    assert gc.rel_error(3.0, -3.0) == 1.0                         # opposite signs: the maximum


def quadratic(rng, n):
    """f(x) = 1/2 x^T A x + b^T x with gradient A x + b (A symmetric)."""
    M = rng.standard_normal((n, n))
    A, b = M + M.T, rng.standard_normal(n)
    return (lambda x: float(0.5 * x @ A @ x + b @ x)), (lambda x: A @ x + b)


def test_numeric_grad_of_a_quadratic_and_x_is_restored(rng):
    f, grad = quadratic(rng, 12)
    x = rng.standard_normal(12)
    x0 = x.copy()
    g = gc.numeric_grad(f, x, h=1e-5)
    np.testing.assert_array_equal(x, x0)                           # restored bit for bit
    # Centred differences are exact for quadratics up to rounding: eps |f| / h ~ 1e-10 abs.
    np.testing.assert_allclose(g, grad(x0), rtol=0, atol=1e-8)
    idx = [0, 5]
    g_part = gc.numeric_grad(f, x, h=1e-5, indices=idx)
    np.testing.assert_allclose(g_part[idx], grad(x0)[idx], rtol=0, atol=1e-8)
    assert np.count_nonzero(g_part) == 2


def test_numeric_grad_restores_x_when_f_raises(rng):
    x = rng.standard_normal(4)
    x0 = x.copy()
    calls = []

    def f(v):
        calls.append(1)
        if len(calls) == 3:                  # raise mid-way, while x[1] is perturbed
            raise RuntimeError("boom")
        return float(v.sum())

    with pytest.raises(RuntimeError, match="boom"):
        gc.numeric_grad(f, x)
    np.testing.assert_array_equal(x, x0)


def test_numeric_grad_wants_flat_float64():
    with pytest.raises(ValueError, match="flat float64 array, got float32"):
        gc.numeric_grad(lambda v: 0.0, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        gc.numeric_grad(lambda v: 0.0, np.zeros((2, 2)))


def test_directional_check_passes_right_and_fails_wrong_gradients(rng):
    f, grad = quadratic(rng, 30)
    x = rng.standard_normal(30)
    x0 = x.copy()
    # exact for a quadratic up to rounding eps |f| / eps_step ~ 1e-9 relative
    assert gc.directional_check(f, grad(x), x, np.random.default_rng(0)) < 1e-7
    np.testing.assert_array_equal(x, x0)
    # a 1 % error in the gradient is a ~0.5 % relative error in <grad, t>
    assert gc.directional_check(f, 1.01 * grad(x), x, np.random.default_rng(0)) > 1e-3


def test_objectives_need_float64():
    agent = DDPGAgent(2, 1, -1, 1, hidden_sizes=(4,), dtype=np.float32, seed=0)
    batch = (np.zeros((2, 2)), np.zeros((2, 1)), np.zeros(2), np.zeros((2, 2)), np.zeros(2))
    for build in (gc.critic_objective, gc.actor_objective):
        with pytest.raises(ValueError, match="float64 agent.*got dtype=float32"):
            build(agent, batch)


def test_objectives_do_not_touch_the_agent():
    agent, batch, _ = gradcheck_command.random_setup(3, 2, [8, 8], 4, seed=1)
    before = [n.params.copy() for n in (agent.actor, agent.critic, agent.actor_targ,
                                        agent.critic_targ)]
    for obj in (gc.critic_objective(agent, batch), gc.actor_objective(agent, batch)):
        x = obj.x0 + 0.1                     # evaluating elsewhere must not write the agent
        obj.f(x)
        obj.grad(x)
    for arr, net in zip(before, (agent.actor, agent.critic, agent.actor_targ, agent.critic_targ)):
        np.testing.assert_array_equal(net.params, arr)


def test_the_critic_check_with_n_step_targets(rng):
    """The critic loss with an n-step y (per-row discount gamma^m (1 - d), docs/math.md section
    12): finite differences of the twin's loss against the kernels' backward pass, and the
    fused update's own gradient equal to the objective's (1e-12: same sums, other call sites)."""
    from helpers import random_batch, small_agent
    agent, before = small_agent(DDPGAgent, seed=4), small_agent(DDPGAgent, seed=4)
    batch = random_batch(rng, agent, 6)
    discount = agent.gamma ** rng.integers(1, 4, 6) * (1 - batch[4])
    obj = gc.critic_objective(before, batch, discount=discount)
    rows = gc.check_objective(obj)
    assert all(row["ok"] for row in rows), rows
    agent.update(*batch, discount=discount)
    assert gc.rel_error(agent.gradients()["critic"], obj.grad(obj.x0)) < 1e-12
    # the discount reaches the gradient: the one-step objective's is another one
    one_step = gc.critic_objective(before, batch)
    assert gc.rel_error(one_step.grad(obj.x0), obj.grad(obj.x0)) > 1e-3


# --- the command ------------------------------------------------------------------------------

def rows_of(out):
    """The table rows of the command's output: lines naming a loss and ending in OK or FAIL."""
    return [line for line in out.splitlines()
            if line.startswith(("L_Q ", "J ")) and line.endswith((" OK", " FAIL"))]


def test_command_passes_with_default_arguments(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    rows = rows_of(out)
    # (16, 16) hidden: 3 layers = 6 tensors per network, plus one directional row, two losses
    assert len(rows) == 14
    assert all(r.endswith(" OK") for r in rows)
    for name in ("critic W_0", "critic b_2", "actor W_0", "actor b_2", "(all, directional)"):
        assert any(name in r for r in rows), name
    assert "14/14 rows within bound" in out


def test_command_options_shape_the_table(capsys):
    assert main(["gradcheck", "--obs-dim", "4", "--act-dim", "1", "--hidden", "5", "6", "7",
                 "--batch", "3", "--seed", "7", "--tol", "1e-6"]) == 0
    rows = rows_of(capsys.readouterr().out)
    assert len(rows) == 2 * (8 + 1)          # 4 layers: W_0, b_0, ..., W_3, b_3 per network
    assert any("critic W_0" in r and "5x5" in r for r in rows)      # critic input 4 + 1
    assert any("actor W_3" in r and "7x1" in r for r in rows)


def test_command_fails_when_every_parameter_gradient_is_scaled(monkeypatch, capsys):
    """Scale dL/dparams by 1.01 after the real backward kernel: every tensor must FAIL."""
    real = gc.mlp_backward

    def scaled(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf):
        real(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf)
        grad *= 1.01

    monkeypatch.setattr(gc, "mlp_backward", scaled)
    assert main(["gradcheck"]) == 1
    rows = rows_of(capsys.readouterr().out)
    assert len(rows) == 14 and all(r.endswith(" FAIL") for r in rows)


def test_command_fails_on_the_actor_when_only_dq_da_is_wrong(monkeypatch, capsys):
    """Scale only dQ/da (the critic's input gradient, used by the actor step): the critic rows
    still pass and every actor row fails, so the check localises the bug."""
    real = gc.mlp_backward

    def scaled_dx(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf):
        real(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf)
        dx *= 1.01

    monkeypatch.setattr(gc, "mlp_backward", scaled_dx)
    assert main(["gradcheck"]) == 1
    rows = rows_of(capsys.readouterr().out)
    assert all(r.endswith(" OK") for r in rows if r.startswith("L_Q "))      # critic loss
    assert all(r.endswith(" FAIL") for r in rows if r.startswith("J "))       # actor objective
    assert len(rows) == 14


def test_a_tiny_error_in_one_tensor_is_caught(monkeypatch, capsys):
    """A 1e-4 relative error in the critic's last bias alone: only that row fails."""
    real = gc.mlp_backward

    def nudged(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf):
        real(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf)
        if grad.size and not tanh_out:       # the critic's parameter gradient
            grad[-1] *= 1 + 1e-4             # b_2 of the critic, the last element

    monkeypatch.setattr(gc, "mlp_backward", nudged)
    assert main(["gradcheck"]) == 1
    failed = [r for r in rows_of(capsys.readouterr().out) if r.endswith(" FAIL")]
    assert any("critic b_2" in r for r in failed)
    assert not any("actor" in r for r in failed)


# --- several critics, linear networks ---------------------------------------------------------

@pytest.mark.parametrize("n, hidden", [(1, ()), (2, (7,)), (3, (6, 5)), (3, ())])
def test_each_critics_gradient_and_the_actors_pass_the_check(n, hidden):
    """numddpg gradcheck's objectives (critic k's term of L_Q with y the frozen minimum over
    every target, then J through critic 1) on warmed-up agents of n critics: every tensor and
    the directional row within 1e-6 (the command's bound; a linear network, hidden (), has one
    W and one b and no ReLU kink)."""
    agent, batch, _ = gradcheck_command.random_setup(3, 2, hidden, 6, seed=n)
    assert agent.n_critics == 1
    agent, batch, _ = gradcheck_command.random_setup(3, 2, hidden, 6, seed=n, n_critics=n)
    objectives = gradcheck_command.objectives(agent, batch)
    assert [o.net for o in objectives] == ["critic", "critic2", "critic3"][:n] + ["actor"]
    for obj in objectives:
        assert obj.margin(obj.x0) > gc.KINK_MARGIN
        rows = gc.check_objective(obj, tol=1e-6)
        assert len(rows) == 2 * (len(hidden) + 1) + 1
        assert all(r["ok"] for r in rows), rows


def test_the_check_of_a_critic_other_than_the_first_can_fail(monkeypatch):
    """Scale the backward kernel's parameter gradient of critic 2 alone: its rows fail, critic
    1's and the actor's pass (the objective of critic k really differentiates critic k)."""
    agent, batch, _ = gradcheck_command.random_setup(3, 2, (6,), 6, seed=0, n_critics=2)
    real = gc.mlp_backward
    target = agent.critic2.params.copy()

    def scaled(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf):
        real(params, sizes, tanh_out, x, acts, dout, grad, dx, dx_col0, delta_buf, dh_buf)
        if grad.size and np.array_equal(params, target):
            grad *= 1.01

    monkeypatch.setattr(gc, "mlp_backward", scaled)
    for obj in gradcheck_command.objectives(agent, batch):
        ok = [r["ok"] for r in gc.check_objective(obj, tol=1e-6)]
        assert (not any(ok)) if obj.net == "critic2" else all(ok), obj.net


def test_the_command_checks_every_critic_of_a_linear_agent(capsys):
    assert main(["gradcheck", "--critics", "3", "--hidden", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "critics=3" in out and "hidden=[]" in out
    assert "12/12 rows within bound" in out        # (W_0, b_0, directional) x 3 critics + actor
    assert "critic3 W_0" in out and "actor b_0" in out and "actor W_1" not in out


@pytest.mark.parametrize("argv, match", [
    (["--obs-dim", "0"], "obs_dim must be a positive integer, got 0"),
    (["--hidden", "4", "0"], "hidden_sizes must all be positive"),
    (["--batch", "0"], r"batch >= 1"),
])
def test_command_reports_bad_arguments(argv, match, capsys):
    assert main(["gradcheck", *argv]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_console_entry_point_runs():
    """``python -m numddpg.tools.cli gradcheck`` as a user would type it (small net for speed)."""
    proc = subprocess.run([sys.executable, "-m", "numddpg", "gradcheck", "--hidden", "8",
                           "--batch", "4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rows within bound" in proc.stdout
