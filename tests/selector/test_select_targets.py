"""selector.select_targets: score standardisation and group target weights, by hand."""

from __future__ import annotations

import math

import numpy as np

from selector.select_targets import standardise, target_weights

T, F = True, False


def test_standardise_uses_only_the_ok_rows():
    # raw[ok] = [1, 3, 5]: mean 3, population std sqrt(8/3) = 1.632993...
    z, mean, sd = standardise(np.array([1.0, 3.0, 5.0, 9.0]), np.array([T, T, T, F]))
    assert mean == 3.0
    assert math.isclose(sd, math.sqrt(8 / 3))
    assert np.allclose(z[:3], [-2 / math.sqrt(8 / 3), 0.0, 2 / math.sqrt(8 / 3)])
    assert np.isnan(z[3])


def test_standardise_constant_and_empty():
    z, mean, sd = standardise(np.array([4.0, 4.0, np.nan]), np.array([T, T, F]))
    assert (mean, sd) == (4.0, 0.0)  # a constant score is centred, not divided by 0
    assert z[:2].tolist() == [0.0, 0.0] and np.isnan(z[2])
    z, mean, sd = standardise(np.array([1.0, 2.0]), np.array([F, F]))
    assert mean is None and sd == 0.0 and np.isnan(z).all()


def test_one_group_without_values():
    names, weights, group = target_weights(None, np.array([5, 6, 7]), np.array([T, F, T]))
    assert names == ["all"] and weights.tolist() == [1.0]
    assert group.tolist() == [0, -1, 0]


def test_proportional_to_selectable_tokens():
    values = np.array(["a", "b", "b", "c"], dtype=object)
    names, weights, group = target_weights(values, np.array([1, 2, 3, 4]), np.array([T, T, T, F]))
    # "c" has no selectable row, so it is no group; a holds 1 token, b holds 2 + 3.
    assert names == ["a", "b"]
    assert np.allclose(weights, [1 / 6, 5 / 6])
    assert group.tolist() == [0, 1, 1, -1]


def test_mixture_targets_add_missing_groups_and_zero_the_rest():
    values = np.array(["a", "b", "b", "c"], dtype=object)
    targets = [("b", 0.7), ("z", 0.3)]
    names, weights, group = target_weights(
        values, np.array([1, 2, 3, 4]), np.array([T, T, T, F]), targets
    )
    assert names == ["a", "b", "z"]  # z is wanted but absent: appended, 0 available
    assert weights.tolist() == [0.0, 0.7, 0.3]
    assert group.tolist() == [0, 1, 1, -1]


def test_numeric_group_values_are_named_as_strings():
    values = np.array([3.0, 10.0, 3.0])  # read_columns gives numbers as float64
    names, weights, group = target_weights(values, np.array([2, 2, 4]), np.array([T, T, T]))
    assert names == ["10.0", "3.0"]  # sorted as strings, like every group name
    assert np.allclose(weights, [2 / 8, 6 / 8])
    assert group.tolist() == [1, 0, 1]
