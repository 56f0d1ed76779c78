import numpy as np
import pytest

from quant.export import classes_from_logits, to_integers


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
