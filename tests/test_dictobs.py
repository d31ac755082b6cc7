"""numddpg.files.dictobs: a Dict of Boxes flattened in sorted key order (gymnasium's order), the
record read back as untrusted input, and one-line errors that name the key."""
import json

import numpy as np
import pytest
from gymnasium import spaces

from numddpg.files.dictobs import MAX_FLAT_DIM, MAX_KEYS, DictLayout, DictObsError

BOX = spaces.Box


def goal_space():
    """A goal env's space, its keys given out of order, one entry 2-D and one a scalar Box."""
    return spaces.Dict({"observation": BOX(-1, 1, (2, 3)), "desired_goal": BOX(-1, 1, (2,)),
                        "achieved_goal": BOX(-1, 1, (2,)), "bonus": BOX(0, 1, ())})


@pytest.fixture
def layout():
    return DictLayout.from_space(goal_space())


def test_layout_is_sorted_keys_end_to_end(layout):
    assert layout.keys == ("achieved_goal", "bonus", "desired_goal", "observation")
    assert layout.shapes == ((2,), (), (2,), (2, 3))
    assert layout.obs_dim == 2 + 1 + 2 + 6
    assert [layout.span(k) for k in layout.keys] == [(0, 2), (2, 3), (3, 5), (5, 11)]
    assert layout.goal_spans() == ((0, 2), (3, 5))


def test_flatten_is_gymnasiums_flatten_and_unflatten_inverts_it(layout):
    space = goal_space()
    space.seed(0)
    for _ in range(5):
        obs = space.sample()
        s = layout.flatten(obs)
        # the same order and values as gymnasium's own flatten (float32 there, float64 here)
        np.testing.assert_array_equal(s, spaces.flatten(space, obs))
        back = layout.unflatten(s)
        assert list(back) == list(layout.keys)
        for key in obs:
            assert back[key].shape == obs[key].shape
            np.testing.assert_array_equal(back[key], obs[key])


def test_vector_observations_flatten_row_by_row(layout):
    space = goal_space()
    space.seed(1)
    samples = [space.sample() for _ in range(3)]
    stacked = {k: np.stack([o[k] for o in samples]) for k in samples[0]}
    s = layout.flatten(stacked, n_envs=3)
    assert s.shape == (3, layout.obs_dim)
    for i, o in enumerate(samples):
        np.testing.assert_array_equal(s[i], layout.flatten(o))
    np.testing.assert_array_equal(layout.unflatten(s)["observation"], stacked["observation"])
    out = np.empty((3, layout.obs_dim), np.float32)        # into the caller's array
    assert layout.flatten(stacked, n_envs=3, out=out) is out


def test_record_round_trips_through_json(layout):
    text = json.dumps(layout.record())
    assert json.loads(text) == {"keys": ["achieved_goal", "bonus", "desired_goal", "observation"],
                                "shapes": [[2], [], [2], [2, 3]]}
    assert DictLayout.from_record(json.loads(text)) == layout
    layout.check_space(goal_space())                       # the same space: no error


GOOD = {"keys": ["achieved_goal", "desired_goal"], "shapes": [[2], [2]]}


@pytest.mark.parametrize("record, words", [
    ([], "exactly the fields"),
    ({"keys": ["a"]}, "exactly the fields"),
    (dict(GOOD, extra=1), "exactly the fields"),
    ({"keys": "ab", "shapes": [[1], [1]]}, "lists"),
    ({"keys": ["a"], "shapes": [[1], [1]]}, "same length"),
    ({"keys": [], "shapes": []}, "same length"),
    ({"keys": [f"k{i:03d}" for i in range(MAX_KEYS + 1)],
      "shapes": [[1]] * (MAX_KEYS + 1)}, "same length"),
    ({"keys": ["b", "a"], "shapes": [[1], [1]]}, "sorted"),
    ({"keys": ["a", "a"], "shapes": [[1], [1]]}, "distinct"),
    ({"keys": [1, 2], "shapes": [[1], [1]]}, "distinct texts"),
    ({"keys": ["", "a"], "shapes": [[1], [1]]}, "1 to 200 characters"),
    ({"keys": ["a" * 201], "shapes": [[1]]}, "1 to 200 characters"),
    ({"keys": ["a"], "shapes": [[0]]}, "positive integers"),
    ({"keys": ["a"], "shapes": [[-3]]}, "positive integers"),
    ({"keys": ["a"], "shapes": [[True]]}, "positive integers"),
    ({"keys": ["a"], "shapes": [[2.0]]}, "positive integers"),
    ({"keys": ["a"], "shapes": [[1] * 9]}, "at most 8"),
    ({"keys": ["a"], "shapes": ["2"]}, "positive integers"),
    ({"keys": ["a"], "shapes": [[MAX_FLAT_DIM + 1]]}, "positive integers"),
    ({"keys": ["a", "b"], "shapes": [[4096, 4096], [1]]}, "larger than"),
])
def test_hostile_records_are_refused(record, words):
    with pytest.raises(DictObsError, match=words):
        DictLayout.from_record(record)


def test_a_space_that_differs_from_the_record_is_named(layout):
    other = goal_space()
    other.spaces["desired_goal"] = BOX(-1, 1, (3,))
    with pytest.raises(DictObsError, match=r"entry 'desired_goal': recorded shape \(2,\), the "
                                           r"space has shape \(3,\)"):
        layout.check_space(other)
    del other.spaces["bonus"]
    with pytest.raises(DictObsError, match="entry 'bonus': recorded shape .*no such entry"):
        layout.check_space(other)


@pytest.mark.parametrize("entry", [spaces.Discrete(3), spaces.MultiBinary(2),
                                   spaces.Dict({"x": BOX(0, 1, (1,))})])
def test_entries_that_are_not_boxes_are_refused_by_name(entry):
    with pytest.raises(DictObsError, match="entry 'odd' is .*not a Box"):
        DictLayout.from_space(spaces.Dict({"odd": entry, "ok": BOX(0, 1, (1,))}))
    with pytest.raises(DictObsError, match="Dict observation space"):
        DictLayout.from_space(BOX(0, 1, (1,)))


def sample(seed=2):
    space = goal_space()
    space.seed(seed)
    return space.sample()


@pytest.mark.parametrize("change, words", [
    (lambda o: o.pop("desired_goal"), "has no entry 'desired_goal'"),
    (lambda o: o.update(extra=np.zeros(1)), "has an entry 'extra' that its space does not"),
    (lambda o: o.update(observation=np.zeros(6)),
     r"entry 'observation' has shape \(6,\).*promises shape \(2, 3\)"),
    (lambda o: o.update(bonus=np.zeros(1)), r"entry 'bonus' has shape \(1,\).*shape \(\)"),
    (lambda o: o.update(achieved_goal=np.array(["a", "b"])), "entry 'achieved_goal' has .*<U1"),
    (lambda o: o.update(achieved_goal=None), "entry 'achieved_goal' has shape"),
    (lambda o: o["observation"].__setitem__((1, 2), np.nan),
     r"entry 'observation' holds a non-finite number \(nan at index \(1, 2\)\)"),
    (lambda o: o.update(desired_goal=np.array([1.0, -np.inf])),
     r"entry 'desired_goal' holds a non-finite number \(-inf at index \(1,\)\)"),
])
def test_observations_that_do_not_fit_are_refused_in_one_line_naming_the_key(layout, change,
                                                                             words):
    obs = sample()
    change(obs)
    with pytest.raises(DictObsError, match=words) as info:
        layout.flatten(obs)
    assert "\n" not in str(info.value)


def test_a_vector_observation_must_have_a_row_per_env(layout):
    obs = sample()
    with pytest.raises(DictObsError, match=r"'achieved_goal' has shape \(2,\).*\(4, 2\)"):
        layout.flatten(obs, n_envs=4)
    with pytest.raises(DictObsError, match="expected a Dict observation"):
        layout.flatten(np.zeros(layout.obs_dim))


def test_goal_spans_need_both_goals_of_one_shape():
    no_goal = DictLayout({"observation": (3,), "achieved_goal": (2,)})
    with pytest.raises(DictObsError, match="missing 'desired_goal'"):
        no_goal.goal_spans()
    uneven = DictLayout({"achieved_goal": (2,), "desired_goal": (3,)})
    with pytest.raises(DictObsError, match="must match"):
        uneven.goal_spans()
    with pytest.raises(DictObsError, match="no entry 'nope'"):
        uneven.span("nope")
