"""The offline default classifier: trained in seconds, from nothing downloaded.

What it is, honestly: a fastText classifier (DCLM's recipe and preprocessing) that
separates *generated* clean prose from *generated* crawl-like junk, optionally plus
text the user supplies (reference text they trust as more positives, documents of
their raw pool as more negatives). Positives: half from the demo pool's prose grammar
(:func:`demopool.clean_prose`, ~1,600 words, 44 templates, 12 topics), half from
:func:`filters.quality.synthetic.clean_prose`. Negatives: half the junk kinds of the
demo pool (:func:`demopool.make_doc` documents of the boilerplate, spam, short,
lorem, code, repeated, bullets and non-English categories; never its clean or
duplicate ones), half :func:`filters.quality.synthetic.crawl_junk` (menus, banners,
listings, keyword stuffing, comment spam, link farms). It scores
"reads like edited prose" against "reads like page chrome". It is **not** DCLM's
OpenHermes-2.5 + ELI5 vs RefinedWeb classifier and will not reproduce DCLM-Baseline's
selection; use it to run the pipeline end to end offline, then switch to a real one.

Real classifiers:

* DCLM's: download ``openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin`` yourself
  (Hugging Face ``mlfoundations/fasttext-oh-eli5``) and pass
  ``QualityScorer(model_path=..., label="__label__hq")``.
* Your own: put positives (e.g. OpenHermes-2.5 / ELI5 answers, Wikipedia, textbooks,
  the domain you want more of) and negatives (a random sample of your raw or
  heuristically-filtered pool) in jsonl / parquet / our run-output directories and run
  ``python -m filters.quality train --positives P --negatives N --out model.bin``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import pyarrow as pa

from curation import storage
from filters.quality.data import TextSource, load_texts
from filters.quality.model import ModelFileError, cache_root, check_model_file, is_remote, sidecar_path
from filters.quality.preprocess import SCHEME
from filters.quality.synthetic import clean_prose, crawl_junk
from filters.quality.train import train_classifier

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "demo+synthetic-v1"
_DEMO_JUNK = ("boilerplate", "spam", "short", "lorem", "code", "repeated", "bullets", "non_english")


def _demo_docs(n: int, seed: int) -> tuple[list[str], list[str]] | None:
    """``n`` prose and ``n`` junk documents from :mod:`demopool`, or None without it."""
    try:
        import demopool as demo
    except ImportError:
        return None
    import random

    pos = []
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        pos.append(demo.clean_prose(rng, rng.randint(60, 600)))
    neg: list[str] = []
    index = 0
    pool_seed = seed + 104_729  # not the seed of a demo pool the user may be curating
    while len(neg) < n and index < 200 * n:
        doc = demo.make_doc(pool_seed, index, 1 << 30)
        if doc.category in _DEMO_JUNK:
            neg.append(doc.text)
        index += 1
    return pos, neg


def default_model(
    cache_dir: str,
    n_docs: int = 2000,
    seed: int = 0,
    extra_positives: TextSource | None = None,
    extra_negatives: TextSource | None = None,
    **train_params: Any,
) -> str:
    """Build (or reuse from ``cache_dir``) the offline default model; return its path.

    The model is trained once per machine into its cache (``$CURATION_CACHE_DIR``, else
    ``~/.cache/dclm-curation``) and copied into ``cache_dir``, which may be any fsspec URL (a run
    folder on an object store). ``n_docs`` generated documents per class, from ``seed``.
    ``extra_positives`` / ``extra_negatives`` add the user's own text (any
    :mod:`filters.quality.data` source). ``train_params`` override :class:`filters.quality.train.TrainConfig`.
    The file name carries a hash of everything that defines the model, so a changed
    recipe trains a new file and an unchanged one is reused.
    """
    if n_docs < 10:
        raise ValueError("n_docs must be >= 10")
    import importlib.util

    # what defines the model (its key) first: the documents are generated only when it has to be trained
    has_demo = importlib.util.find_spec("demopool") is not None
    generator = GENERATOR_VERSION if has_demo else "synthetic-v1"
    extra: dict[str, Any] = {}
    extra_files: dict[str, Any] = {}
    for kind, source in (("positives", extra_positives), ("negatives", extra_negatives)):
        if source is not None:
            extra[kind] = load_texts(source, train_params.get("text_field", "text"))
            extra_files[kind] = extra[kind].files
    params = {"seed": seed, **train_params}
    recipe = {
        "generator": generator,
        "n_docs": n_docs,
        "seed": seed,
        "params": params,
        "preprocess": SCHEME,
        "extra": extra_files,
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]
    name = f"quality-default-{key}.bin"
    if is_remote(cache_dir):
        path = storage.join(cache_dir, name)
        found = storage.stat_many([path, sidecar_path(path)])
        have = all(found.values())
    else:
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, name)
        have = os.path.exists(path) and os.path.exists(sidecar_path(path))
    if have:
        try:
            check_model_file(path)
            return path
        except ModelFileError as exc:
            logger.warning("rebuilding the default quality model: %s", exc)
    # trained once per machine (in a local temporary folder, into this machine's cache), then recorded in
    # cache_dir, a local folder or one on an object store beside the run, where scoring processes on any node
    # find it (filters.quality.model.local_copy)
    machine = os.path.join(cache_root(), "quality-default", name)
    fresh = False
    try:
        check_model_file(machine)
        if not os.path.exists(sidecar_path(machine)):
            raise ModelFileError(f"{machine} has no metadata")
    except ModelFileError:
        half = n_docs // 2
        demo = _demo_docs(half, seed) if has_demo else None
        if demo is None:
            half, demo = 0, ([], [])
        pos = demo[0] + clean_prose(n_docs - half, seed) + (extra["positives"].texts if "positives" in extra else [])
        neg = demo[1] + crawl_junk(n_docs - half, seed) + (extra["negatives"].texts if "negatives" in extra else [])
        meta = train_classifier(pa.array(pos, pa.large_string()), pa.array(neg, pa.large_string()), machine,
                                **params)
        fresh = True
        logger.info("built the offline default quality model %s (synthetic prose vs synthetic crawl junk; held-out "
                    "AUC %s)", machine, meta["metrics"]["holdout"].get("auc"))
    if not fresh:
        logger.info("the offline default quality model comes from this machine's cache (%s)", machine)
    for src, dst in ((machine, path), (sidecar_path(machine), sidecar_path(path))):
        with open(src, "rb") as f:
            storage.write_bytes_atomic(dst, f.read())
    return path
