"""One small collected dataset shared by the collector and dataset tests."""

from __future__ import annotations

import pytest

from av_stack.data.collect import collect
from av_stack.data.config import CollectConfig
from tests.av_stack.data.mix import MIX


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """Two towns x two logs of 6 frames each (the default sensor suite, every frame): (directory, summary).
    Tests must not change it (copy it first)."""
    out = tmp_path_factory.mktemp("dataset")
    summary = collect(CollectConfig.model_validate(MIX), out, show_progress=False)
    return out, summary
