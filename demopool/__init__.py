"""The demo pool: a seeded, generated stand-in for a web crawl, with planted ground truth.

An application of the runtime, not part of it: ``curation`` never imports this package.
``demopool.pool`` writes the pool in the four native formats and a WARC file (its ground
truth and manifest under ``_truth/``, which inputs never include),
``demopool.warc`` wraps documents in crawled-looking HTML pages, ``demopool.lexicon`` holds
the grammar's words. Command line: ``python -m demopool --out DIR --docs N --seed S``.
"""

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

__all__ = [
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
