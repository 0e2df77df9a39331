"""The one text normalisation applied before fastText, at training and at scoring time.

DCLM scores a page with its fastText classifier after joining the page's lines with
single spaces: ``" ".join(text.strip().splitlines())`` (mlfoundations/dclm,
``baselines/mappers/enrichers/quality_prediction_enrichers_calc_fasttext.py``). We
use the same normalisation by default so that DCLM's released
``openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin`` sees text the way DCLM fed
it, and we train our own classifiers on exactly the same transformation.

Why this is needed at all: fastText's ``predict`` works on one line (a ``\\n`` raises),
and in its training file a newline ends an example. Every Unicode line boundary
that :meth:`str.splitlines` knows (``\\n``, ``\\r``, ``\\r\\n``, ``\\v``, ``\\f``,
``\\x1c``-``\\x1e``, ``\\x85``, U+2028, U+2029) becomes one space. No other change is
made: fastText tokenises on whitespace itself and DCLM did not lowercase, so case
and punctuation are kept (``lowercase=True`` exists for classifiers trained that way
and is recorded in the model's sidecar JSON, which the scorer reads back).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Name recorded in the training metadata; bump if the transformation changes.
SCHEME = "dclm-joinlines-v1"


def preprocess(text: str, lowercase: bool = False) -> str:
    """Normalise one document for fastText (see the module docstring)."""
    out = " ".join(text.strip().splitlines())
    return out.lower() if lowercase else out


def preprocess_batch(texts: Iterable[str | None], lowercase: bool = False) -> list[str]:
    """:func:`preprocess` over a batch; a null text becomes the empty string."""
    if lowercase:
        return [" ".join(t.strip().splitlines()).lower() if t is not None else "" for t in texts]
    return [" ".join(t.strip().splitlines()) if t is not None else "" for t in texts]
