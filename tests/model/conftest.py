"""Fixtures for the transformer tests: tiny odd-sized configs (vocab 99, hidden 32, 4 heads, 2 layers)."""

import pytest
import torch

import audit  # noqa: F401  (registers the Auto classes)
from audit.model import AuditTransformerConfig

PAD_ID = 0


def tiny_config(**overrides) -> AuditTransformerConfig:
    fields = {
        "vocab_size": 99,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "max_position_embeddings": 64,
        "pad_token_id": PAD_ID,
        "num_labels": 3,
    }
    fields.update(overrides)
    return AuditTransformerConfig(**fields)


@pytest.fixture
def make_config():
    """Factory: the tiny config with keyword overrides."""
    return tiny_config


@pytest.fixture
def config() -> AuditTransformerConfig:
    return tiny_config()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of shape (3, 13) with ragged lengths 13, 9, 5 and pad id 0 after the end."""
    gen = torch.Generator().manual_seed(7)
    lengths = [13, 9, 5]
    ids = torch.randint(1, 99, (3, 13), generator=gen)
    mask = torch.zeros(3, 13, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    ids = ids.masked_fill(mask == 0, PAD_ID)
    return ids, mask


@pytest.fixture
def single_thread():
    """Tiny models train faster on one thread (no inter-thread sync on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
