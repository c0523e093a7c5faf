"""benchmarks/roofline.py: the FLOP count it sets against the machine's roof must be the model's true arithmetic."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from audit.model import AuditTransformerConfig, AuditTransformerForMaskedLM


def _roofline():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "roofline.py"
    spec = importlib.util.spec_from_file_location("roofline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["roofline"] = module  # its dataclass looks its module up while being defined
    spec.loader.exec_module(module)
    return module


roofline = _roofline()

BATCH, LENGTH, HIDDEN, HEADS, INTERMEDIATE, VOCAB, LAYERS = 3, 10, 64, 4, 256, 500, 2


def _model() -> AuditTransformerForMaskedLM:
    torch.manual_seed(0)
    config = AuditTransformerConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                    num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                                    max_position_embeddings=32)
    return AuditTransformerForMaskedLM(config).eval()


def _forward_flops_by_hand() -> int:
    """2 FLOPs per multiply-accumulate: per block Q/K/V/O projections, the two attention products, the FFN; then
    the MLM head's transform and vocabulary projection."""
    rows = BATCH * LENGTH
    per_block = 2 * rows * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTERMEDIATE) + 2 * 2 * BATCH * LENGTH * LENGTH * HIDDEN
    return LAYERS * per_block + 2 * rows * (HIDDEN * HIDDEN + HIDDEN * VOCAB)


def test_inference_flops_match_the_hand_count():
    model = _model()
    ids = torch.randint(5, VOCAB, (BATCH, LENGTH))
    with torch.inference_mode():
        _, flops = roofline.count_flops(lambda: model(input_ids=ids))
    assert flops == _forward_flops_by_hand()


def _masked_copies_flops_by_hand(sentences: int, copies: int) -> int:
    """The shared-work masked-copies path of a 2-block model (``audit.model.masked_copies``), per part."""
    first_block = (
        (sentences + 1) * LENGTH * 3 * HIDDEN * HIDDEN  # Q/K/V of the sentences and of [MASK] at each position
        + copies * 2 * LENGTH * LENGTH * HIDDEN  # per copy: the attention scores and the weighted sum of values
        + copies * LENGTH * HIDDEN * HIDDEN  # W_o, per copy
        + copies * LENGTH * 2 * HIDDEN * INTERMEDIATE  # the FFN, per copy
    )
    last_block_at_the_mask = copies * (
        2 * HIDDEN * HIDDEN  # query projection; the query moved into the input space through W_k
        + 2 * HEADS * LENGTH * HIDDEN  # per head: scores against, and the weighted sum of, the normed inputs
        + 2 * HIDDEN * HIDDEN  # W_v of the pooled input; W_o
        + 2 * HIDDEN * INTERMEDIATE
    )
    head = copies * (HIDDEN * HIDDEN + HIDDEN * VOCAB)
    return 2 * (first_block + last_block_at_the_mask + head)


def test_masked_copies_flops_match_the_hand_count():
    """The path does the arithmetic its docstring claims: nothing per copy before the first attention, one row per
    copy in the last block."""
    from audit.model.masked_copies import MaskedCopyScorer

    model = _model()
    sentence_ids = torch.randint(5, VOCAB, (BATCH, LENGTH))
    copy_sentence = torch.tensor([0, 0, 1, 2, 2, 2, 2])
    copy_position = torch.tensor([1, 4, 9, 0, 3, 5, 8])
    with torch.inference_mode():
        _, flops = roofline.count_flops(
            lambda: MaskedCopyScorer(model)(sentence_ids, copy_sentence, copy_position, mask_token_id=4))
    assert flops == _masked_copies_flops_by_hand(BATCH, len(copy_sentence))


def test_backward_counts_too():
    """An input gradient through a linear layer costs one more product of the same size."""
    layer = torch.nn.Linear(HIDDEN, INTERMEDIATE)
    layer.requires_grad_(False)
    x = torch.randn(BATCH, HIDDEN, requires_grad=True)
    _, flops = roofline.count_flops(lambda: layer(x).sum().backward())
    assert flops == 2 * (2 * BATCH * HIDDEN * INTERMEDIATE)


def test_report_arithmetic():
    report = roofline.RooflineReport(seconds=4.0, flops=2_000_000_000_000, peak_flops_per_second=1e12)
    assert report.achieved == pytest.approx(5e11)
    assert report.share_of_peak == pytest.approx(0.5)
    assert report.floor_seconds == pytest.approx(2.0)
    assert report.ratio_bound(baseline_seconds=10.0) == pytest.approx(5.0)
    assert "50% of the measured" in report.describe("path")


def test_matmul_peak_is_a_positive_rate():
    assert roofline.matmul_peak(64, 32, 48, repeats=3) > 0
