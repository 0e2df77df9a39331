"""The demo pool: a seeded, generated stand-in for a web crawl, with planted ground truth.

An application of the runtime, not part of it: ``curation`` never imports this package.
``demopool.pool`` writes the pool in the four native formats and a WARC file (its ground
truth and manifest under ``_truth/``, which inputs never include),
``demopool.warc`` wraps documents in crawled-looking HTML pages, ``demopool.lexicon`` holds
the grammar's words. Command line: ``python -m demopool --out DIR --docs N --seed S``.
"""

import random

from demopool import lexicon
from demopool.pool import (
    CATEGORIES,
    GENERATOR_VERSION,
    KEPT_CATEGORIES,
    LANG_CODES,
    TOPIC_NAMES,
    TRUTH_DIR,
    clean_prose,
    generate_pool,
    main,
    make_doc,
    manifest_path,
    page_meta,
    pool_files,
    read_manifest,
    truth_path,
)


def spam_page(rng: random.Random) -> str:
    """One spam page (keyword lists, tag clouds, stuffed titles), as the pool's ``spam`` category writes them."""
    from demopool.pool import _spam

    return _spam(rng)


def non_english_page(rng: random.Random) -> tuple[str, str]:
    """One page in another language (de, fr, es, it, pt, nl, ru, pl or zh) and its language code."""
    from demopool.pool import _non_english

    return _non_english(rng)


def near_duplicate(rng: random.Random, text: str) -> str:
    """``text`` with 0.5-2% of its words replaced, inserted or deleted (at least one edit)."""
    from demopool.pool import _near_dup

    return _near_dup(rng, text)


#: navigation, cookie-banner and footer lines of the pool's boilerplate pages (footers hold ``{year}``,
#: ``{site}`` and ``{num}`` fields)
BOILERPLATE_LINES = {"nav": tuple(lexicon.NAV_LINES), "cookie": tuple(lexicon.COOKIE_LINES),
                     "footer": tuple(lexicon.FOOTER_LINES)}

__all__ = [
    "BOILERPLATE_LINES",
    "near_duplicate",
    "non_english_page",
    "spam_page",
    "CATEGORIES",
    "GENERATOR_VERSION",
    "KEPT_CATEGORIES",
    "LANG_CODES",
    "TOPIC_NAMES",
    "TRUTH_DIR",
    "clean_prose",
    "generate_pool",
    "main",
    "make_doc",
    "manifest_path",
    "page_meta",
    "pool_files",
    "read_manifest",
    "truth_path",
]
