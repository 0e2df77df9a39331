"""MinHash signatures against a plain per-document Python reference of the same hash family.

The reference spells the family out one document at a time with Python integers:
normalise (unicodedata), split on whitespace, SipHash each word (pandas, one word per
call), a polynomial over each n-gram's word hashes modulo 2**64 with the length mixed
in and fmix64, then for every function k the minimum of ``(a_k * (h >> 32) + b_k) mod
2**32``. The vectorised code (byte split, dictionary-encoded word hashes, Horner over
shifted views, the compiled signature kernel) must give exactly the same signatures; the
kernel and its numpy reference agree on every layout of offsets and hashes.
"""

from __future__ import annotations

import random
import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from filters.dedup.hashing import (
    fmix64,
    hash_tokens,
    ngram_hashes,
    ngram_spans,
    normalize_fuzzy,
    range_hashes,
    split_spaces,
)
from filters.dedup.minhash import (
    SIG_EMPTY,
    hash_params,
    minhash_signatures,
    shingle_hashes,
    signature_keys,
    signatures_from_hashes,
    signatures_numpy,
)

from .conftest import real_documents

M64 = (1 << 64) - 1
P = 0x3243F6A8885A308D
LEN_MIX = 0x9E3779B97F4A7C15
WORD_KEY = "dclm-dedup-key-0"


# --------------------------------------------------------------------------- the reference


def ref_words(text: str | None) -> list[str]:
    """NFKC, lower case, digits -> 0, punctuation/symbols/separators/whitespace/ASCII controls -> space, split.

    Python's own Unicode tables: they differ from Arrow's (utf8proc) and RE2's on code
    points unassigned in Python's Unicode version, on U+0130 (Python lowers it to two
    code points) and on final sigma (Python lowers a word-final capital sigma to
    U+03C2); the random texts below avoid those.
    """
    out = []
    for ch in unicodedata.normalize("NFKC", text or "").lower():
        cat = unicodedata.category(ch)
        if cat == "Nd":
            out.append("0")
        elif cat[0] in "PSZ" or ch.isspace() or (ch < "\x80" and not ch.isalnum()):
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out).split()


def ref_fmix64(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M64
    return x ^ (x >> 33)


def ref_shingles(text: str | None, n: int, word_hash: dict[str, int]) -> list[int]:
    words = ref_words(text)
    for w in words:
        if w not in word_hash:
            word_hash[w] = int(pd.util.hash_array(np.array([w], dtype=object), hash_key=WORD_KEY, categorize=False)[0])
    grams = [words[i : i + n] for i in range(len(words) - n + 1)] if len(words) >= n else [words] if words else []
    out = []
    for g in grams:
        h = 0
        for w in g:
            h = (h * P + word_hash[w]) & M64
        out.append(ref_fmix64(h ^ ((len(g) * LEN_MIX) & M64)))
    return out


def ref_signature(shingles: list[int], a: np.ndarray, b: np.ndarray) -> list[int]:
    if not shingles:
        return [0xFFFFFFFF] * len(a)
    xs = [h >> 32 for h in shingles]
    return [min((int(ak) * x + int(bk)) & 0xFFFFFFFF for x in xs) for ak, bk in zip(a, b)]


def ref_signatures(texts: list[str | None], n: int, num_perm: int, seed: int) -> np.ndarray:
    a, b = hash_params(num_perm, seed)
    cache: dict[str, int] = {}
    return np.array([ref_signature(ref_shingles(t, n, cache), a, b) for t in texts], dtype=np.uint32)


# --------------------------------------------------------------------------- random, real-looking text

POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    + list("éèêëÄÖÜäöüßçñøåÆŒœ")  # Latin-1 / Latin Extended
    + list("αβγδεζηθλμπρστφωΑΒΓΔΩ")  # Greek (no capital sigma: see ref_words)
    + list("абвгдежзийклмнопрстуфхцчшщыэюяАБВГДЖЗ")  # Cyrillic
    + list("的一是不了人我在有他这中大来上国")  # CJK ideographs
    + list("٣٤５６²½ﬁＡＢ＿")  # other digits, fullwidth, compatibility forms (NFKC changes them)
    + ["e\u0301", "a\u0308"]  # combining marks (NFKC composes them)
    + list(".,;:!?'\"()[]{}-–—…“”‘’«»/\\@#$%^&*+=<>|~`€£¥©®™°•")  # punctuation and symbols
    + ["\U0001f600", "\U0001f680"]  # emoji (symbols)
)
SPACES = [" ", " ", " ", "  ", "\n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u00a0", "\u2028", "\u3000"]


def random_text(rng: random.Random, n_words: int) -> str:
    vocab_size = max(3, n_words // 3)  # repeated words, like prose
    vocab = ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 9))) for _ in range(vocab_size)]
    parts = []
    for _ in range(n_words):
        parts.append(rng.choice(vocab))
        parts.append(rng.choice(SPACES))
    return "".join(parts)


def random_texts(seed: int, n_docs: int) -> list[str | None]:
    rng = random.Random(seed)
    texts: list[str | None] = [random_text(rng, rng.choice([1, 2, 4, 5, 6, 12, 40, 150])) for _ in range(n_docs)]
    # edge cases: empty, blanks or punctuation only (no word), null, one word, exactly n words
    texts += ["", "   \n\t ", "!!! ... ---", None, "word", "One two three four five", "ünïcödé"]
    rng.shuffle(texts)
    return texts


@pytest.mark.parametrize("ngram", [5, 1, 3])
def test_signatures_equal_python_reference_on_random_text(ngram):
    texts = random_texts(ngram, 80)
    got = minhash_signatures(pa.array(texts, pa.large_string()), ngram, 112, 7)
    assert got.shape == (len(texts), 112) and got.dtype == np.uint32
    np.testing.assert_array_equal(got, ref_signatures(texts, ngram, 112, 7))
    empty = np.array([not ref_words(t) for t in texts])
    assert empty.sum() >= 4
    assert (got[empty] == SIG_EMPTY).all() and (got[~empty] != SIG_EMPTY).any(axis=1).all()


def test_signatures_equal_python_reference_on_real_text():
    docs = real_documents()
    rng = random.Random(3)
    texts = [t[:3000] for t in rng.sample(docs, 60)]  # a prefix keeps the Python reference quick
    got = minhash_signatures(pa.array(texts, pa.large_string()), 5, 112, 1)
    np.testing.assert_array_equal(got, ref_signatures(texts, 5, 112, 1))


def test_words_equal_python_reference():
    texts = random_texts(11, 300)
    offsets, words = split_spaces(normalize_fuzzy(pa.array(texts, pa.large_string())))
    flat = words.to_pylist()
    assert [flat[offsets[i] : offsets[i + 1]] for i in range(len(texts))] == [ref_words(t) for t in texts]


def test_space_split_equals_unicode_whitespace_split_for_every_code_point():
    """After normalize_fuzzy the ASCII space is the only whitespace left: the byte split finds
    exactly the words of Arrow's and Python's Unicode whitespace splits, for every code point."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    # 64 code points per document, each alone and doubled between letters
    texts = ["".join(f"a{chr(c)}B{chr(c)}{chr(c)}" for c in cps[i : i + 64]) for i in range(0, len(cps), 64)]
    norm = normalize_fuzzy(pa.array(texts, pa.large_string()))
    offsets, words = split_spaces(norm)
    arrow = pa.compute.utf8_split_whitespace(norm)  # gives empty strings at leading/trailing blanks
    arrow_flat = arrow.flatten()
    nonempty = pa.compute.greater(pa.compute.binary_length(arrow_flat), 0)
    arrow_doc = pa.compute.list_parent_indices(arrow).to_numpy()[nonempty.to_numpy(zero_copy_only=False)]
    np.testing.assert_array_equal(np.diff(offsets), np.bincount(arrow_doc, minlength=len(texts)))
    assert words.equals(arrow_flat.filter(nonempty).cast(pa.large_string()))
    py = [t.split() for t in norm.to_pylist()]
    assert [len(w) for w in py] == np.diff(offsets).tolist()
    assert [w for ws in py for w in ws] == words.to_pylist()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_ngram_hashes_equal_range_hashes(n):
    rng = np.random.default_rng(n)
    lengths = rng.choice([0, 1, 2, 4, 5, 6, 9, 30], size=400)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = rng.integers(0, 2**64, size=int(offsets[-1]), dtype=np.uint64)
    seg, starts, ends = ngram_spans(offsets, n, min_n=1)
    gram_off, got = ngram_hashes(values, offsets, n)
    np.testing.assert_array_equal(got, range_hashes(values, starts, ends))
    np.testing.assert_array_equal(np.diff(gram_off), np.bincount(seg, minlength=len(lengths)))
    with pytest.raises(ValueError, match="n-gram size"):
        ngram_hashes(values, offsets, 0)


# --------------------------------------------------------------------------- batch independence


def test_signatures_independent_of_batch_composition_and_block_size():
    texts = random_texts(5, 120) + [t[:4000] for t in random_texts(6, 20) if t]
    arr = pa.array(texts, pa.large_string())
    whole = minhash_signatures(arr)
    alone = np.concatenate([minhash_signatures(arr.slice(i, 1)) for i in range(len(texts))])
    np.testing.assert_array_equal(whole, alone)
    order = np.random.default_rng(1).permutation(len(texts))
    np.testing.assert_array_equal(minhash_signatures(arr.take(pa.array(order)))[np.argsort(order)], whole)
    sliced = np.concatenate([minhash_signatures(arr.slice(i, 7)) for i in range(0, len(texts), 7)])
    np.testing.assert_array_equal(sliced, whole)
    chunked = pa.chunked_array([arr.slice(0, 50), arr.slice(50)])
    np.testing.assert_array_equal(minhash_signatures(chunked), whole)
    # block sizes from one shingle (every document is split over blocks of its own) to all at once
    sh_off, h = shingle_hashes(arr, 5)
    a, b = hash_params(112, 1)
    for block in (1, 3, 64, 1000, len(h) + 1):
        np.testing.assert_array_equal(signatures_from_hashes(sh_off, h, a, b, block=block), whole)
    # 64-bit hashes or their 32-bit keys
    np.testing.assert_array_equal(signatures_from_hashes(sh_off, signature_keys(h), a, b), whole)


def test_compiled_kernel_equals_numpy_reference_on_every_layout():
    """The numba kernel against signatures_numpy: documents of 0..40 shingles (the kernel takes eight at a
    time, then the rest one by one), offsets not starting at 0, 64-bit hashes and 32-bit keys, any num_perm;
    bad offsets are refused instead of read out of bounds."""
    rng = np.random.default_rng(4)
    lengths = rng.choice(np.arange(41), size=500)
    lengths[:10] = [0, 1, 7, 8, 9, 15, 16, 17, 0, 0]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    h = rng.integers(0, 2**64, size=int(offsets[-1]) + 5, dtype=np.uint64)
    for k in (1, 13, 112, 130):
        a, b = hash_params(k, k)
        got = signatures_from_hashes(offsets, h, a, b)
        np.testing.assert_array_equal(got, signatures_numpy(offsets, h, a, b))
        assert (got[lengths == 0] == SIG_EMPTY).all()
        np.testing.assert_array_equal(signatures_from_hashes(offsets + 5, h, a, b),
                                      signatures_numpy(offsets + 5, h, a, b))
        np.testing.assert_array_equal(signatures_from_hashes(offsets, signature_keys(h), a, b), got)
    assert signatures_from_hashes(np.zeros(1, np.int64), h[:0], a, b).shape == (0, len(a))
    with pytest.raises(ValueError, match="offsets"):
        signatures_from_hashes(np.array([0, len(h) + 1]), h, a, b)
    with pytest.raises(ValueError, match="offsets"):
        signatures_from_hashes(np.array([0, 5, 3]), h, a, b)


def test_hash_params_are_seeded_odd_and_checked():
    a, b = hash_params(112, 1)
    a2, b2 = hash_params(112, 1)
    assert a.dtype == b.dtype == np.uint32 and len(a) == 112
    assert (a % 2 == 1).all() and len(set(a.tolist())) == 112
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)
    a3, _ = hash_params(112, 2)
    assert (a3 != a).any()
    with pytest.raises(ValueError, match="num_perm"):
        hash_params(0, 1)


# --------------------------------------------------------------------------- the estimator


@pytest.mark.parametrize(("jaccard", "size"), [(0.5, 200), (0.8, 50), (0.9, 1000), (0.2, 30)])
def test_estimates_behave_like_independent_functions(jaccard, size):
    """On set pairs of known Jaccard J (well-mixed 64-bit keys, as fmix64 gives), the fraction of
    equal signature values is unbiased with standard deviation sqrt(J (1 - J) / K): what K
    independent random functions give. A family with correlated functions fails the spread."""
    pairs, k = 1500, 112
    common = round(2 * size * jaccard / (1 + jaccard))
    j_true = common / (2 * size - common)
    width = 2 * size - common
    keys = fmix64(np.arange(pairs * width, dtype=np.uint64) + np.uint64(size << 40)).reshape(pairs, width)
    sets_a, sets_b = keys[:, :size], np.concatenate([keys[:, :common], keys[:, size:]], axis=1)
    h = np.concatenate([sets_a, sets_b], axis=1).ravel()  # document 2i = A_i, 2i + 1 = B_i
    offsets = np.arange(2 * pairs + 1, dtype=np.int64) * size
    a, b = hash_params(k, 1)
    sig = signatures_from_hashes(offsets, h, a, b)
    est = (sig[0::2] == sig[1::2]).mean(axis=1)
    sd = np.sqrt(j_true * (1 - j_true) / k)
    assert abs(est.mean() - j_true) < 4 * sd / np.sqrt(pairs)
    assert 0.9 * sd < est.std() < 1.1 * sd


def test_shingle_hashes_are_word_ngrams():
    """Shingles are n-grams of normalised words: case, digits, punctuation and spacing do not
    change them; a changed word changes exactly the n-grams that contain it."""
    base = "The quick brown fox jumps over the lazy dog near 42 rivers"
    same = "the QUICK, brown fox -- jumps\tover the lazy dog (near 17 rivers)!"
    edited = "The quick brown fox jumps over the sleepy dog near 42 rivers"
    sh_off, h = shingle_hashes(pa.array([base, same, edited], pa.large_string()), 5)
    docs = [h[sh_off[i] : sh_off[i + 1]] for i in range(3)]
    assert len(docs[0]) == 12 - 5 + 1
    np.testing.assert_array_equal(docs[0], docs[1])
    changed = docs[0] != docs[2]
    assert changed.sum() == 5 and changed[3:].all()  # 'lazy' is word 7: n-grams 3..7 hold it
    words = split_spaces(normalize_fuzzy(pa.array([base], pa.large_string())))[1]
    assert len(set(hash_tokens(words).tolist())) == 11  # 'the' twice
