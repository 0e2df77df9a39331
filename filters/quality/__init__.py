"""fastText quality classifier: DCLM-recipe training, a scoring stage, selection.

Public API::

    from filters.quality import (
        train_classifier,     # (positives, negatives, out_path, **params) -> metadata dict
        default_model,        # (cache_dir, ...) -> path of the offline default model
        QualityScorer,        # Mapper: adds float32 quality_score = P(label)
        QualityThreshold,     # Filter: drop score < min_score ("quality:below_threshold")
        TopFractionSelect,    # GlobalStage: keep the top fraction of the pool, exact
        preprocess,           # the one normalisation used for training and scoring
    )

Command line: ``python -m filters.quality train --help``.
"""

from filters.quality.default import default_model
from filters.quality.model import ModelFileError, check_model_file, load_model, predict_label_proba, rss_bytes
from filters.quality.preprocess import preprocess, preprocess_batch
from filters.quality.score import QualityScorer
from filters.quality.select import QualityThreshold, TopFractionSelect
from filters.quality.train import TrainConfig, binary_metrics, roc_auc, train_classifier

__all__ = [
    "ModelFileError",
    "QualityScorer",
    "QualityThreshold",
    "TopFractionSelect",
    "TrainConfig",
    "binary_metrics",
    "check_model_file",
    "default_model",
    "load_model",
    "predict_label_proba",
    "preprocess",
    "preprocess_batch",
    "roc_auc",
    "rss_bytes",
    "train_classifier",
]
