"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if "RQVAE_IDS_MODEL_CACHE" not in os.environ:
    # exported embedding models (embed backends): one folder per test session, never ~/.cache
    import tempfile

    os.environ["RQVAE_IDS_MODEL_CACHE"] = tempfile.mkdtemp(prefix="rqvae-ids-models-")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it lives beside the checkout)")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (seeded sequence-model runs compare equal; restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
