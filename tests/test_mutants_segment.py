"""The JSD curve (``segment.jsd_curve``) against the definition: JSD in bits of consecutive attention rows."""

from __future__ import annotations

import numpy as np

from mycelium_datasets.segment import jsd_curve


def entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def jsd_bits(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits, from its definition: H(mixture) - mean of H(p), H(q)."""
    p, q = p / p.sum(), q / q.sum()
    return entropy_bits((p + q) / 2) - (entropy_bits(p) + entropy_bits(q)) / 2


def test_each_value_is_the_divergence_of_a_row_from_the_one_before():
    # cot_start 1: row t covers positions 0 .. 1 + t; rows sum to 1, as softmax rows do
    rows = np.array(
        [
            [0.5, 0.5, 0.0, 0.0],
            [0.2, 0.3, 0.5, 0.0],
            [0.2, 0.3, 0.5, 0.0],  # the same as before: 0
            [0.1, 0.1, 0.1, 0.7],
        ],
        dtype=np.float32,
    )
    curve = jsd_curve(rows, cot_start=1)
    assert curve.dtype == np.float64 and curve[0] == 0
    expected = [0.0] + [jsd_bits(rows[t - 1].astype(np.float64), rows[t].astype(np.float64)) for t in (1, 2, 3)]
    np.testing.assert_allclose(curve, expected, atol=1e-6)
    assert curve[2] == 0 and 0 < curve[1] < 1 and 0 < curve[3] < 1


def test_disjoint_rows_are_one_bit_apart():
    rows = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(jsd_curve(rows, cot_start=0), [0.0, 1.0], atol=1e-9)


def test_an_empty_row_gives_zero_and_the_curve_goes_on():
    rows = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],  # no attention recorded (padding): nothing to compare, either side
            [0.0, 1.0, 0.0],
            [0.5, 0.0, 0.5],
        ]
    )
    curve = jsd_curve(rows, cot_start=0)
    assert not np.isnan(curve).any()
    assert curve[1] == 0 and curve[2] == 0
    assert curve[3] > 0


def test_the_first_token_has_no_row_before_it():
    rows = np.array([[0.2, 0.8, 0.0], [0.5, 0.2, 0.3], [0.9, 0.05, 0.05]])  # the last row differs from the first
    assert jsd_curve(rows, cot_start=1)[0] == 0
