"""The demo pool: a seeded, generated stand-in for a web crawl, with planted ground truth.

An application of the runtime, not part of it: ``curation`` never imports this package.
``demopool.pool`` writes the pool in the four native formats and a WARC file,
``demopool.warc`` wraps documents in crawled-looking HTML pages, ``demopool.lexicon`` holds
the grammar's words. Command line: ``python -m demopool --out DIR --docs N --seed S``.
"""

from demopool.pool import (
    CATEGORIES,
    GENERATOR_VERSION,
    KEPT_CATEGORIES,
    LANG_CODES,
    TOPIC_NAMES,
    clean_prose,
    generate_pool,
    main,
    make_doc,
    page_meta,
)

__all__ = [
    "CATEGORIES",
    "GENERATOR_VERSION",
    "KEPT_CATEGORIES",
    "LANG_CODES",
    "TOPIC_NAMES",
    "clean_prose",
    "generate_pool",
    "main",
    "make_doc",
    "page_meta",
]
