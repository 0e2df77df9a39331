from __future__ import annotations

import pyarrow as pa
import pytest

from filters.quality.synthetic import clean_prose, crawl_junk
from filters.quality.train import train_classifier

SMALL: dict = {}  # DCLM defaults: smaller bucket/dim make fastText diverge on tiny synthetic sets


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small classifier trained on the synthetic generators (session-wide)."""
    path = str(tmp_path_factory.mktemp("quality_model") / "model.bin")
    train_classifier(pa.array(clean_prose(300, seed=1)), pa.array(crawl_junk(300, seed=1)), path, seed=1, **SMALL)
    return path
