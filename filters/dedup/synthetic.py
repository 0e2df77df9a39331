"""A deterministic generator of document shards with planted duplicates (tests and benchmarks).

Documents are Zipf-distributed words from a pronounceable synthetic vocabulary,
split into paragraphs. A fraction of documents are planted copies of an earlier
document: exact copies (with case and whitespace changes that exact
normalisation undoes), near copies (a few percent of words substituted,
inserted or deleted), and documents that reuse paragraphs of earlier ones. The
ground truth rides in the ``metadata`` JSON: ``{"dup_of": id, "kind": ...}``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from curation.schema import DOC_SCHEMA

_SYL = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "ze",
    "pa",
    "do",
    "fi",
    "gu",
    "ha",
    "je",
    "bo",
    "ly",
    "qu",
    "xi",
    "wa",
    "en",
    "or",
    "st",
    "an",
    "il",
    "um",
]


def vocabulary(size: int = 50_000, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    words: list[str] = []
    while len(words) < size:
        n = int(rng.integers(1, 5))
        w = "".join(_SYL[i] for i in rng.integers(0, len(_SYL), size=n))
        if w not in out:
            out.add(w)
            words.append(w)
    return words


def _doc_words(rng: np.random.Generator, n_vocab: int, n_words: int) -> np.ndarray:
    z = rng.zipf(1.2, size=n_words)
    return (z - 1) % n_vocab


def generate_shard(
    shard_idx: int,
    n_docs: int,
    seed: int = 0,
    exact_frac: float = 0.05,
    near_frac: float = 0.05,
    para_frac: float = 0.03,
    mean_words: int = 160,
    vocab: list[str] | None = None,
    source: str = "synthetic",
) -> pa.Table:
    """One shard of ``n_docs`` documents; duplicates point at earlier documents of the same shard."""
    vocab = vocab or vocabulary()
    vocab_arr = np.array(vocab, dtype=object)
    rng = np.random.default_rng([seed, shard_idx])
    ids, texts, meta, urls = [], [], [], []
    for i in range(n_docs):
        doc_id = f"{source}-{shard_idx:05d}-{i:07d}"
        r = rng.random()
        m: dict[str, str] = {}
        if i > 10 and r < exact_frac:
            j = int(rng.integers(0, i))
            t = texts[j]
            t = t.upper() if rng.random() < 0.3 else t.replace(" ", "  ", 3) + "  "
            m = {"dup_of": ids[j], "kind": "exact"}
            url = urls[j]
        elif i > 10 and r < exact_frac + near_frac:
            j = int(rng.integers(0, i))
            words = texts[j].split(" ")
            n_edit = max(1, int(len(words) * rng.uniform(0.003, 0.012)))
            for _ in range(n_edit):
                k = int(rng.integers(0, len(words)))
                op = rng.random()
                if op < 0.5:
                    words[k] = vocab[int(rng.integers(0, len(vocab)))]
                elif op < 0.75 and len(words) > 1:
                    del words[k]
                else:
                    words.insert(k, vocab[int(rng.integers(0, len(vocab)))])
            t = " ".join(words)
            m = {"dup_of": ids[j], "kind": "near"}
            url = f"https://site{int(rng.integers(0, 10**6))}.example/{i}"
        else:
            n = max(8, int(rng.lognormal(np.log(mean_words), 0.5)))
            w = vocab_arr[_doc_words(rng, len(vocab), n)]
            n_para = max(1, n // 40)
            cuts = np.linspace(0, n, n_para + 1).astype(int)
            paras = [" ".join(w[cuts[p] : cuts[p + 1]]) for p in range(n_para)]
            if i > 10 and r < exact_frac + near_frac + para_frac:
                j = int(rng.integers(0, i))
                donor = texts[j].split("\n")
                paras.insert(int(rng.integers(0, len(paras) + 1)), donor[int(rng.integers(0, len(donor)))])
                m = {"para_from": ids[j], "kind": "paragraph"}
            t = "\n".join(paras)
            url = f"https://site{int(rng.integers(0, 10**6))}.example/{i}"
        ids.append(doc_id)
        texts.append(t)
        meta.append(json.dumps(m) if m else None)
        urls.append(url)
    return pa.table(
        {
            "id": ids,
            "text": pa.array(texts, pa.large_string()),
            "source": [source] * n_docs,
            "url": urls,
            "metadata": meta,
        },
        schema=DOC_SCHEMA,
    )
