"""Tests of medtui.metrics on hand-computed accuracy matrices.

Expected values are written as literal arithmetic so that a reader can check them
against the matrices.  Rows: 0 = zero-shot, i = after stage i; columns: trained
tasks in order, then held-out tasks.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medtui.metrics import (
    HIGHER_IS_BETTER,
    METRIC_HELP,
    METRIC_NAMES,
    compute_metrics,
    continual_metrics,
    joint_metrics,
    specialized_metrics,
    to_array,
)

# 3 trained tasks + 1 held-out column.
CONTINUAL = [
    [0.30, 0.20, 0.10, 0.25],  # zero-shot
    [0.90, 0.35, 0.15, 0.30],  # after task 1
    [0.95, 0.80, 0.25, 0.35],  # after task 2 (task 1 still improves)
    [0.50, 0.60, 0.85, 0.40],  # after task 3
]

CONTINUAL_EXPECTED = {
    "last": (0.50 + 0.60 + 0.85) / 3,
    "avg": (0.90 + 0.35 + 0.15 + 0.95 + 0.80 + 0.25 + 0.50 + 0.60 + 0.85) / 9,
    "aia": (0.90 + (0.95 + 0.80) / 2 + (0.50 + 0.60 + 0.85) / 3) / 3,
    "la": (0.90 + 0.80 + 0.85) / 3,
    "bwt": ((0.50 - 0.90) + (0.60 - 0.80)) / 2,
    "fwt": ((0.35 - 0.20) + (0.25 - 0.10)) / 2,
    "forgetting": ((max(0.90, 0.95) - 0.50) + (0.80 - 0.60)) / 2,
    "transfer": (0.35 + (0.15 + 0.25) / 2) / 2,
    "zero_shot": (0.30 + 0.20 + 0.10) / 3,
    "heldout": 0.40,
}


def assert_metrics(got: dict, expected: dict) -> None:
    """Exact key set and values (None must stay None, floats compared with approx)."""
    assert set(got) == set(expected)
    for name, value in expected.items():
        if value is None:
            assert got[name] is None, f"{name} = {got[name]!r}, expected None"
        else:
            assert isinstance(got[name], float), f"{name} is {type(got[name]).__name__}"
            assert got[name] == pytest.approx(value), name


def test_continual_full_matrix_all_metrics() -> None:
    got = continual_metrics(CONTINUAL, n_trained=3)
    assert_metrics(got, CONTINUAL_EXPECTED)
    assert tuple(got) == METRIC_NAMES["continual"]
    assert json.loads(json.dumps(got)) == got


def test_continual_accepts_numpy_array() -> None:
    assert_metrics(continual_metrics(np.array(CONTINUAL), 3), CONTINUAL_EXPECTED)


def test_continual_single_stage_has_no_transfer_metrics() -> None:
    got = continual_metrics([[0.30, 0.20], [0.90, 0.40]], n_trained=1)
    assert_metrics(
        got,
        {
            "last": 0.90,
            "avg": 0.90,
            "aia": 0.90,
            "la": 0.90,
            "bwt": None,
            "fwt": None,
            "forgetting": None,
            "transfer": None,
            "zero_shot": 0.30,
            "heldout": 0.40,
        },
    )


def test_continual_without_heldout_columns() -> None:
    matrix = [row[:3] for row in CONTINUAL]
    assert_metrics(continual_metrics(matrix, 3), {**CONTINUAL_EXPECTED, "heldout": None})


def test_continual_several_heldout_columns() -> None:
    matrix = [row + [0.50] for row in CONTINUAL]
    got = continual_metrics(matrix, 3)
    assert_metrics(got, {**CONTINUAL_EXPECTED, "heldout": (0.40 + 0.50) / 2})


def test_heldout_only_matrix() -> None:
    got = continual_metrics([[0.30, 0.50]], n_trained=0)
    expected = {name: None for name in METRIC_NAMES["continual"]}
    assert_metrics(got, {**expected, "heldout": (0.30 + 0.50) / 2})


def test_continual_none_entries_are_skipped() -> None:
    matrix = [
        [None, None, None],  # zero-shot not evaluated
        [None, 0.35, None],  # R[1][1] missing
        [0.70, 0.80, None],
        [0.50, 0.60, 0.85],
    ]
    got = continual_metrics(matrix, 3)
    assert_metrics(
        got,
        {
            "last": (0.50 + 0.60 + 0.85) / 3,
            "avg": (0.35 + 0.70 + 0.80 + 0.50 + 0.60 + 0.85) / 6,
            # row 1 has no entry with j <= 1, so it drops out of the outer mean
            "aia": ((0.70 + 0.80) / 2 + (0.50 + 0.60 + 0.85) / 3) / 2,
            "la": (0.80 + 0.85) / 2,
            # the j = 1 term needs R[1][1], which is missing
            "bwt": (0.60 - 0.80) / 1,
            # every term needs R[0][j]: all missing
            "fwt": None,
            # max over l in {1, 2} of R[l][1] skips the missing R[1][1]
            "forgetting": ((0.70 - 0.50) + (0.80 - 0.60)) / 2,
            # j = 3 has only missing entries before stage 3
            "transfer": 0.35 / 1,
            "zero_shot": None,
            "heldout": None,
        },
    )


def test_forgetting_term_with_all_missing_max_is_skipped() -> None:
    matrix = [[0.30, 0.20], [None, 0.35], [0.50, 0.60]]  # R[1][1] never evaluated
    got = continual_metrics(matrix, 2)
    assert got["forgetting"] is None  # the only term needs max over {R[1][1]}: all missing
    assert got["bwt"] is None
    assert got["la"] == pytest.approx(0.60 / 1)


def test_nan_is_treated_like_none() -> None:
    with_none = [[None, 0.2], [0.9, None], [0.5, 0.8]]
    with_nan = [[math.nan, 0.2], [0.9, math.nan], [0.5, 0.8]]
    assert continual_metrics(with_nan, 2) == continual_metrics(with_none, 2)


def test_continual_partial_run_two_of_three_stages() -> None:
    matrix = CONTINUAL[:3]  # stage 3 not run yet
    expected = {
        "last": (0.95 + 0.80) / 2,
        # task 3 is not part of the sequence so far: R[1][3] = 0.15, R[2][3] = 0.25 excluded
        "avg": (0.90 + 0.35 + 0.95 + 0.80) / 4,
        "aia": (0.90 + (0.95 + 0.80) / 2) / 2,
        "la": (0.90 + 0.80) / 2,
        "bwt": (0.95 - 0.90) / 1,
        "fwt": (0.35 - 0.20) / 1,
        "forgetting": (0.90 - 0.95) / 1,
        "transfer": 0.35 / 1,
        "zero_shot": (0.30 + 0.20 + 0.10) / 3,  # still over all trained tasks
        "heldout": 0.35,  # row T = 2
    }
    assert_metrics(continual_metrics(matrix, 3), expected)
    # A stage row with only held-out entries (or nothing) does not count as a stage.
    assert_metrics(continual_metrics(matrix + [[None, None, None, 0.60]], 3), expected)
    assert_metrics(continual_metrics(matrix + [[None, None, None, None]], 3), expected)


def test_continual_nothing_trained_yet() -> None:
    got = continual_metrics(CONTINUAL[:1], 3)
    expected = {name: None for name in METRIC_NAMES["continual"]}
    assert_metrics(got, {**expected, "zero_shot": (0.30 + 0.20 + 0.10) / 3, "heldout": 0.25})


def test_empty_matrix_gives_all_none() -> None:
    for paradigm in METRIC_NAMES:
        got = compute_metrics([], paradigm, 2)
        assert_metrics(got, {name: None for name in METRIC_NAMES[paradigm]})


SPECIALIZED = [
    [0.30, 0.20, 0.10, 0.25],  # zero-shot
    [0.90, 0.30, 0.20, 0.40],  # specialist on task 1
    [0.25, 0.80, 0.15, 0.35],  # specialist on task 2
    [0.20, 0.10, 0.85, 0.30],  # specialist on task 3
]


def test_specialized_metrics() -> None:
    got = specialized_metrics(SPECIALIZED, 3)
    assert tuple(got) == METRIC_NAMES["specialized"]
    assert_metrics(
        got,
        {
            "in_domain": (0.90 + 0.80 + 0.85) / 3,
            "cross": (0.30 + 0.20 + 0.25 + 0.15 + 0.20 + 0.10) / 6,
            "zero_shot": (0.30 + 0.20 + 0.10) / 3,
            "heldout": (0.40 + 0.35 + 0.30) / 3,
        },
    )


def test_specialized_partial_and_single_task() -> None:
    assert_metrics(
        specialized_metrics(SPECIALIZED[:3], 3),
        {
            "in_domain": (0.90 + 0.80) / 2,
            "cross": (0.30 + 0.20 + 0.25 + 0.15) / 4,
            "zero_shot": (0.30 + 0.20 + 0.10) / 3,
            "heldout": (0.40 + 0.35) / 2,
        },
    )
    assert_metrics(
        specialized_metrics([[0.3], [0.9]], 1),
        {"in_domain": 0.9, "cross": None, "zero_shot": 0.3, "heldout": None},
    )


def test_joint_metrics() -> None:
    matrix = [[0.30, 0.20, 0.10, 0.25], [0.80, 0.75, 0.70, 0.45]]
    got = joint_metrics(matrix, 3)
    assert tuple(got) == METRIC_NAMES["joint"]
    assert_metrics(
        got,
        {"last": (0.80 + 0.75 + 0.70) / 3, "zero_shot": (0.30 + 0.20 + 0.10) / 3, "heldout": 0.45},
    )
    assert_metrics(
        joint_metrics(matrix[:1], 3),
        {"last": None, "zero_shot": (0.30 + 0.20 + 0.10) / 3, "heldout": None},
    )
    with pytest.raises(ValueError, match="rows"):
        joint_metrics(matrix + [matrix[1]], 3)


def test_compute_metrics_dispatches() -> None:
    assert compute_metrics(CONTINUAL, "continual", 3) == continual_metrics(CONTINUAL, 3)
    assert compute_metrics(SPECIALIZED, "specialized", 3) == specialized_metrics(SPECIALIZED, 3)
    assert compute_metrics(CONTINUAL[:2], "joint", 3) == joint_metrics(CONTINUAL[:2], 3)


@pytest.mark.parametrize("paradigm", ["sequential", "", "Continual", None])
def test_unknown_paradigm(paradigm) -> None:
    with pytest.raises(ValueError, match="unknown paradigm"):
        compute_metrics(CONTINUAL, paradigm, 3)


def test_to_array_converts_none_to_nan() -> None:
    arr = to_array([[0.5, None], [1, 0]])
    assert arr.dtype == np.float64
    assert arr.shape == (2, 2)
    assert arr[0, 0] == 0.5 and math.isnan(arr[0, 1])
    assert arr[1].tolist() == [1.0, 0.0]
    assert to_array([]).shape == (0, 0)


def test_to_array_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="ragged"):
        to_array([[0.1, 0.2], [0.3]])


@pytest.mark.parametrize("bad", [1.5, -0.1, 85.0, math.inf, -math.inf])
def test_to_array_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        to_array([[0.1, bad]])
    with pytest.raises(ValueError, match="outside"):
        to_array(np.array([[0.1, bad]]))


def test_to_array_rejects_non_numbers_and_non_matrices() -> None:
    with pytest.raises(ValueError, match="not a number"):
        to_array([[0.1, "high"]])
    with pytest.raises(ValueError, match="not a sequence"):
        to_array([0.1, 0.2])
    with pytest.raises(ValueError, match="2-D"):
        to_array(np.array([0.1, 0.2]))


def test_shape_and_n_trained_validation() -> None:
    with pytest.raises(ValueError, match="rows"):
        continual_metrics(CONTINUAL + [CONTINUAL[-1]], 3)
    with pytest.raises(ValueError, match="column"):
        continual_metrics(CONTINUAL, 5)
    with pytest.raises(ValueError, match="n_trained"):
        continual_metrics(CONTINUAL, -1)
    with pytest.raises(ValueError, match="outside"):
        compute_metrics([[0.3, 30.0]], "continual", 1)


def test_metric_tables_are_consistent() -> None:
    names = {name for names in METRIC_NAMES.values() for name in names}
    assert set(METRIC_HELP) == names
    assert set(HIGHER_IS_BETTER) == names
    assert HIGHER_IS_BETTER["forgetting"] is False
    assert all(HIGHER_IS_BETTER[name] for name in names - {"forgetting"})
    assert all(isinstance(text, str) and text and "\n" not in text for text in METRIC_HELP.values())
