"""The scoring stage: adds ``quality_score`` = P(high-quality label) from a fastText model.

Works with any supervised fastText ``.bin``: ours (:func:`filters.quality.train_classifier`,
:func:`filters.quality.default_model`) or DCLM's released classifier
(``openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin``, labels ``__label__hq`` /
``__label__cc``), which a user downloads themselves and passes as ``model_path``.

``model_path`` may be any fsspec URL (``s3://...``): each process that scores copies it once
into its machine's cache (:func:`filters.quality.model.local_copy`). The recipe hash names
the model by its sha256, not its path.

Lifecycle (DESIGN.md, "Stages and the runner"): the constructor validates the file
cheaply (exists, fastText magic number, sha256 against its metadata) so a bad path
fails before any shard runs; :meth:`QualityScorer.validate` additionally loads it and
checks the label; :meth:`QualityScorer.setup` loads it once per worker process
through a per-process cache keyed by (path, sha256). The stage pickles without the
model. Scoring is one batched ``predict`` over the preprocessed texts of the batch.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pyarrow as pa

from curation.stage import Mapper
from filters.quality.model import (
    ModelFileError,
    cached_models,
    check_model_file,
    load_model,
    local_copy,
    predict_label_proba,
    read_sidecar,
    rss_bytes,
)
from filters.quality.preprocess import SCHEME, preprocess_batch

logger = logging.getLogger(__name__)


class QualityScorer(Mapper):
    """Add a float32 ``column`` (default ``quality_score``): the probability of ``label``.

    ``lowercase=None`` takes the setting recorded in the model's sidecar JSON (our
    trained models), else False (DCLM's released model expects cased text).
    Nothing is dropped here; select with :class:`~filters.quality.QualityThreshold`
    or :class:`~filters.quality.TopFractionSelect`, so thresholds can change
    without rescoring.
    """

    name = "quality_score"
    version = "1"

    def __init__(
        self,
        model_path: str | os.PathLike,
        label: str = "__label__hq",
        column: str = "quality_score",
        lowercase: bool | None = None,
    ) -> None:
        self.model_path = (
            os.path.abspath(os.fspath(model_path)) if "://" not in os.fspath(model_path) else os.fspath(model_path)
        )
        if not label.startswith("__label__"):
            raise ValueError(f"fastText labels start with '__label__', got {label!r}")
        self.label = label
        self.column = column
        # the sha256 enters the recipe hash: a retrained model recomputes the shards
        self.model_sha256 = check_model_file(self.model_path)
        meta = read_sidecar(self.model_path) or {}
        pre = meta.get("preprocess", {})
        if pre.get("scheme", SCHEME) != SCHEME:
            raise ModelFileError(
                f"{self.model_path} was trained with preprocessing {pre.get('scheme')!r}; "
                f"this version applies {SCHEME!r}"
            )
        self.lowercase = bool(pre.get("lowercase", False)) if lowercase is None else bool(lowercase)
        self._model: Any = None
        self._load_report: dict[str, Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        """Load the model (once per process) and check ``label``; return :meth:`memory_report`.

        Raises :class:`~filters.quality.model.ModelFileError` for a corrupt model or a
        label the model does not have. The runner calls this before any shard runs.
        """
        self.setup()
        return self.memory_report()

    def setup(self) -> None:
        if self._model is not None:
            return
        before = rss_bytes()
        model = load_model(self.model_path, self.model_sha256)
        labels = model.get_labels()
        if self.label not in labels:
            raise ModelFileError(f"{self.model_path} has labels {labels}, not {self.label!r}; pass label=...")
        self._model = model
        self._load_report = {"rss_before_load_bytes": before, "rss_after_load_bytes": rss_bytes()}
        logger.info("quality scorer ready in pid %d: %s", os.getpid(), self.memory_report())

    def memory_report(self) -> dict[str, Any]:
        """Memory of this worker process: RSS now, the model file size, the models cached."""
        return {
            "pid": os.getpid(),
            "rss_bytes": rss_bytes(),
            "model_file_bytes": os.path.getsize(local) if os.path.exists(local := local_copy(self.model_path))
            else None,
            "models_cached": len(cached_models()),
            **(self._load_report or {}),
        }

    def config(self) -> dict[str, Any]:
        """The settings that define the scores: the model by its sha256, not by where it is stored (a model
        copied to an object store, or another folder, gives the same recipe hash)."""
        cfg = super().config()
        cfg.pop("model_path", None)
        return cfg

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # never pickle the weights; setup() reloads them per process
        return state

    # -- scoring ------------------------------------------------------------------------------
    def score_texts(self, texts: list[str | None]) -> pa.Array:
        """Scores for raw document texts (float32 array)."""
        if self._model is None:
            self.setup()
        scores = predict_label_proba(self._model, preprocess_batch(texts, self.lowercase), self.label)
        return pa.array(scores, type=pa.float32())

    def transform(self, table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
        scores = self.score_texts(table.column("text").to_pylist())
        if self.column in table.column_names:
            table = table.set_column(table.column_names.index(self.column), self.column, scores)
        else:
            table = table.append_column(pa.field(self.column, pa.float32()), scores)
        return table, None
