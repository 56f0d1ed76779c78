"""Full-model comparison on the digits MLP: equal size, equal epochs, compressed weights really compressed."""
import torch

from quant.analysis import digits, finetune


def test_prune_and_quantize_digits_mlp():
    torch.set_num_threads(1)
    model, train_dl, test_dl = digits.trained_mlp(epochs=15)
    base = finetune.accuracy(model, test_dl)
    assert base > 0.93
    row = finetune.compare(model, train_dl, test_dl, bits=4, epochs=3)
    assert row["prune_ratio"] == 0.75
    assert row["prune_stats"]["sparsity"] == 0.75
    assert row["quant_stats"]["max_distinct_values"] <= 16
    assert row["quant_accuracy"] > 0.9 and row["prune_accuracy"] > 0.85
    # fine-tuning recovers what one-shot pruning lost
    assert row["prune_accuracy"] >= row["prune_accuracy_before"]
    # the source model is left untouched
    assert finetune.accuracy(model, test_dl) == base
    q = finetune.quantized_copy(model, 2)
    for m in q.modules():
        if torch.nn.utils.parametrize.is_parametrized(m, "weight"):
            assert torch.unique(m.weight).numel() <= 4
