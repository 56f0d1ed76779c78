import numpy as np
import pytest

from quant.export import classes_from_logits, classifier_integers, on_grid, to_integers


@pytest.mark.parametrize("top", [10, 10 ** 3, 10 ** 5, 2 ** 17])
def test_integer_logits_read_back_exactly_from_float32(top):
    """8-bit layers reach accumulators of 1e5 and more; float32 logits must still give the exact integers."""
    rng = np.random.default_rng(0)
    ints = rng.integers(-top, top + 1, size=(500, 10))
    scale = np.float32(0.0123456)
    logits = (ints.astype(np.float32) * scale).astype(np.float32)
    assert np.array_equal(to_integers(logits, float(scale), "test"), ints)


def test_logits_too_large_for_float32_are_refused():
    with pytest.raises(RuntimeError, match="too large to read back"):
        to_integers(np.array([[2.0 ** 22, 1.0]], dtype=np.float32), 1.0, "test")


def test_off_grid_logits_are_refused():
    with pytest.raises(RuntimeError, match="not integer multiples"):
        to_integers(np.array([[0.5, 1.0]]), 1.0, "test")


def test_classes_pick_lowest_index_among_float_ties():
    # 3 * 0.1 and 0.3 differ in the last float bit but are the same integer logit
    logits = np.array([[0.1 * 3, 0.3, 0.2], [0.0, -1.0, 0.0]])
    assert classes_from_logits(logits).tolist() == [0, 0]


def test_wide_8bit_classifier_gives_exact_integers_where_float32_logits_leave_the_grid():
    """An 8-bit x 8-bit classifier over 576 inputs with non-power-of-two scales: the float32 logits drift
    off the grid after cancellation (the digits CNN at 8/8 was refused for 0.026 of a step), while the
    integer route reads input and weights back and sums in int64."""
    rng = np.random.default_rng(1)
    qa = rng.integers(0, 256, size=(400, 576))
    qw = rng.integers(-127, 128, size=(576, 10))
    s_a, s_w = np.float32(0.026631353), np.float32(0.0037379204)
    a = (qa.astype(np.float32) * s_a).astype(np.float32)
    w = (qw.astype(np.float32) * s_w).astype(np.float32)
    exact = qa @ qw
    assert np.array_equal(classifier_integers(a, w, float(s_a), float(s_w), "test"), exact)
    drift = np.abs((a @ w).astype(np.float64) / (float(s_a) * float(s_w)) - exact)
    assert drift.max() > 1e-2  # the float32 route this replaces would not have been exact here


def test_values_off_their_grid_are_refused_by_name():
    with pytest.raises(RuntimeError, match="classifier's input: values are not integer multiples"):
        classifier_integers(np.array([[0.5, 1.0]]), np.ones((2, 1)), 1.0, 1.0, "test")
    assert on_grid(np.float32([3 * 0.1, -7 * 0.1]), 0.1, "test").tolist() == [3, -7]
