"""A supervised fastText model file (``.bin``, or quantised ``.ftz``) read with numpy, and
batched prediction that returns what fastText's own ``predict`` returns.

Why not call ``fasttext``'s ``predict``: it handles one document at a time in C++ and
spends its time hashing the character n-grams of every token (lid.176: 2- to 4-grams,
FNV-1a) and adding their rows. A batch of web pages repeats the same tokens many times
(Zipf), so here the batch is split into tokens with Arrow, every *distinct* token is
hashed once (numpy, over all distinct tokens at once), its rows are summed once, and a
page's hidden vector is the sum of its tokens' sums divided by its number of rows — the
same average fastText computes (``Model::computeHidden``), summed in float64 instead of
float32 (scores agree to ~1e-6; ``tests/filters/test_langid.py`` compares both on real
pages). The output layer is evaluated for the whole batch with two matrix products.

What is reproduced (fastText 0.9, ``src/dictionary.cc``, ``loss.cc``, ``fasttext.cc``):

* tokens are split on `` \\t\\n\\v\\f\\r\\0``; ``predict`` ends every line with ``\\n``,
  which adds the end-of-sentence token ``</s>``; a literal ``</s>`` token ends the line;
* a token in the vocabulary contributes its own row and its char n-grams' rows; an
  out-of-vocabulary one only its n-grams' rows; tokens starting with ``__label__`` are
  labels and contribute nothing;
* n-grams are taken over ``<token>`` in UTF-8 characters (``minn..maxn``), hashed with
  FNV-1a over *signed* bytes, modulo ``bucket``, and, in pruned (quantised) models,
  kept only when the pruning table has them;
* quantised rows are decoded from the product quantiser (and its norm quantiser);
* hierarchical softmax (the tree rebuilt from the label counts) and softmax output
  layers; a probability is ``exp(sum(log(p + 1e-5)))`` as fastText reports it.

Models with word n-grams (``wordNgrams > 1``) or other losses are refused with a
message; :class:`filters.langid.LanguageID` then uses fastText's own ``predict``.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

MAGIC = 793712314
EOS = "</s>"
LABEL_PREFIX = "__label__"  # Args::label; not saved in the model file
LOSS_NAMES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
MODEL_NAMES = {1: "cbow", 2: "sg", 3: "supervised"}
_FNV_OFFSET = np.uint32(2166136261)
_FNV_PRIME = np.uint32(16777619)
_KSUB = 256  # ProductQuantizer: 8 bits per sub-quantiser code
TOKEN_BLOCK = 1 << 16  # tokens whose rows are gathered at once in ``hidden``


class UnsupportedModel(ValueError):
    """The file is a fastText model this reader does not evaluate (use fastText's own predict)."""


@dataclass(frozen=True)
class FastTextModel:
    """The parts of a supervised fastText model that prediction needs."""

    dim: int
    minn: int
    maxn: int
    bucket: int
    word_ngrams: int
    loss: str
    words: list[str]  # the vocabulary (row i of ``input`` is word i)
    labels: list[str]  # label strings, in the model's order (by count, descending)
    label_counts: np.ndarray  # int64, one per label
    prune_keys: np.ndarray | None  # n-gram buckets kept by quantisation (None: not pruned)
    prune_rows: np.ndarray | None  # their row offset after the words
    input: np.ndarray  # float32 (rows, dim), dequantised
    output: np.ndarray  # float32 (labels or tree nodes, dim)

    @property
    def nwords(self) -> int:
        return len(self.words)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def array(self, dtype: type, count: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += arr.nbytes
        return arr

    def cstring(self) -> bytes:
        end = self.data.index(b"\0", self.pos)
        s = self.data[self.pos : end]
        self.pos = end + 1
        return s


def _read_pq(r: _Reader) -> tuple[int, int, int, int, np.ndarray]:
    dim, nsubq, dsub, lastdsub = r.unpack("iiii")
    centroids = r.array(np.float32, dim * _KSUB)
    return dim, nsubq, dsub, lastdsub, centroids


def _decode_pq(codes: np.ndarray, pq: tuple[int, int, int, int, np.ndarray]) -> np.ndarray:
    """Rows of a product-quantised matrix (ProductQuantizer::addcode with alpha 1)."""
    dim, nsubq, dsub, lastdsub, centroids = pq
    m = codes.shape[0]
    out = np.zeros((m, dim), dtype=np.float32)
    for q in range(nsubq):
        d = lastdsub if q == nsubq - 1 else dsub
        if q == nsubq - 1:  # the last sub-quantiser's centroids are packed with lastdsub
            table = centroids[q * _KSUB * dsub : q * _KSUB * dsub + _KSUB * d].reshape(_KSUB, d)
        else:
            table = centroids[q * _KSUB * dsub : (q + 1) * _KSUB * dsub].reshape(_KSUB, dsub)
        out[:, q * dsub : q * dsub + d] = table[codes[:, q]]
    return out


def _read_matrix(r: _Reader, quantised: bool) -> np.ndarray:
    if not quantised:
        m, n = r.unpack("qq")
        return r.array(np.float32, m * n).reshape(m, n)
    qnorm, m, n, codesize = r.unpack("?qqi")
    codes = r.array(np.uint8, codesize)
    pq = _read_pq(r)
    nsubq = pq[1]
    rows = _decode_pq(codes.reshape(m, nsubq), pq)
    if qnorm:
        norm_codes = r.array(np.uint8, m)
        npq = _read_pq(r)
        norms = npq[4][norm_codes.astype(np.int64)]  # a 1-d quantiser: centroid i is its value
        rows *= norms[:, None]
    return rows


def read_model(path: str | Path) -> FastTextModel:
    """Read a supervised fastText ``.bin`` / ``.ftz`` file (format version 11 or 12)."""
    data = Path(path).read_bytes()
    r = _Reader(data)
    if len(data) < 8:
        raise UnsupportedModel(f"{path}: not a fastText model (too short)")
    magic, version = r.unpack("ii")
    if magic != MAGIC:
        raise UnsupportedModel(f"{path}: not a fastText model file (bad magic number)")
    if version > 12:
        raise UnsupportedModel(f"{path}: fastText format version {version} is newer than this reader (12)")
    dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lr_update = r.unpack("i" * 12)
    (_t,) = r.unpack("d")
    if MODEL_NAMES.get(model) != "supervised":
        raise UnsupportedModel(f"{path}: a {MODEL_NAMES.get(model, model)} model, not a supervised classifier")
    if version == 11:
        maxn = 0  # fastText: old supervised models do not use char n-grams
    size, nwords, nlabels = r.unpack("iii")
    _ntokens, prune_size = r.unpack("qq")
    words, labels, counts = [], [], []
    for _ in range(size):
        word = r.cstring().decode("utf-8", errors="surrogateescape")
        count, kind = r.unpack("qb")
        if kind == 0:
            words.append(word)
        else:
            labels.append(word)
            counts.append(count)
    if len(words) != nwords or len(labels) != nlabels:
        raise UnsupportedModel(f"{path}: dictionary sizes do not add up ({len(words)}/{nwords} words)")
    prune_keys = prune_rows = None
    if prune_size >= 0:
        pairs = r.array(np.int32, 2 * prune_size).reshape(-1, 2)
        prune_keys, prune_rows = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    (quant_input,) = r.unpack("?")
    inp = _read_matrix(r, quant_input)
    (qout,) = r.unpack("?")
    out = _read_matrix(r, quant_input and qout)
    return FastTextModel(
        dim=dim, minn=minn, maxn=maxn, bucket=bucket, word_ngrams=word_ngrams, loss=LOSS_NAMES.get(loss, str(loss)),
        words=words, labels=labels, label_counts=np.array(counts, dtype=np.int64), prune_keys=prune_keys,
        prune_rows=prune_rows, input=inp, output=out,
    )  # fmt: skip


def _hs_paths(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hierarchical softmax: for every leaf (label), which inner nodes lie on its path and
    with which branch (HierarchicalSoftmaxLoss::buildTree, from the label counts).

    Returns (right, left): float64 (inner nodes, labels) 0/1 matrices.
    """
    osz = len(counts)
    n_nodes = 2 * osz - 1
    count = np.full(n_nodes, 1e15)
    count[:osz] = counts
    parent = np.full(n_nodes, -1, dtype=np.int64)
    binary = np.zeros(n_nodes, dtype=bool)
    leaf, node = osz - 1, osz
    for i in range(osz, n_nodes):
        mini = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini.append(leaf)
                leaf -= 1
            else:
                mini.append(node)
                node += 1
        count[i] = count[mini[0]] + count[mini[1]]
        parent[mini[0]] = parent[mini[1]] = i
        binary[mini[1]] = True
    right = np.zeros((max(osz - 1, 0), osz))
    left = np.zeros((max(osz - 1, 0), osz))
    for label in range(osz):
        j = label
        while parent[j] != -1:
            (right if binary[j] else left)[parent[j] - osz, label] = 1.0
            j = parent[j]
    return right, left


class BatchPredictor:
    """fastText's ``predict(text, k=1)`` for a whole Arrow array of texts at once.

    The row sum and row count of every token seen are kept (``max_cached_tokens`` of
    them; the cache is emptied when full), so a stream of batches hashes each token's
    n-grams once per process. The cached values are pure functions of the token: results
    do not depend on what was predicted before.
    """

    def __init__(self, model: FastTextModel, max_cached_tokens: int = 2_000_000) -> None:
        if model.word_ngrams > 1:
            raise UnsupportedModel(f"word n-grams (wordNgrams={model.word_ngrams}) are not evaluated here")
        if model.loss not in ("hs", "softmax"):
            raise UnsupportedModel(f"loss {model.loss!r} is not evaluated here (hs and softmax are)")
        self.model = model
        self.labels = model.labels
        self.max_cached_tokens = max_cached_tokens
        self._input_t = np.ascontiguousarray(model.input.T, dtype=np.float64)  # (dim, rows): one gather per dim
        # n-gram bucket -> input row (-1: pruned away): one gather per n-gram instead of a search
        if model.prune_keys is None:
            self._bucket_row = None
        else:
            self._bucket_row = np.full(model.bucket, -1, dtype=np.int32)
            self._bucket_row[model.prune_keys] = model.nwords + model.prune_rows
        self._eos = model.words.index(EOS) if EOS in model.words else -1
        # every vocabulary word: its own row plus its n-grams' rows (Dictionary::initNgrams)
        vocab = pa.array(model.words, pa.large_string())
        rows, owner = self.subword_rows(vocab, skip=EOS)
        n = model.nwords
        ar = np.arange(n)
        self._vocab_sum = self._sum_rows(np.concatenate([ar, rows]), np.concatenate([ar, owner]), n)  # (n, dim)
        self._vocab_cnt = (np.bincount(owner, minlength=n) + 1).astype(np.float64)
        self._reset_cache()
        if model.loss == "hs":
            self._right, self._left = _hs_paths(model.label_counts)
            self._out = model.output[: self._right.shape[0]].astype(np.float64)  # inner node i uses row i
        else:
            self._out = model.output.astype(np.float64)

    def _reset_cache(self) -> None:
        self._index = {w: i for i, w in enumerate(self.model.words)}
        self._sums = [self._vocab_sum]  # blocks of (tokens, dim), concatenated lazily
        self._cnts = [self._vocab_cnt]
        self._size = self.model.nwords
        if "" not in self._index:  # an empty token (from leading/trailing spaces) contributes nothing
            self._index[""] = self._size
            self._sums.append(np.zeros((1, self.model.dim)))
            self._cnts.append(np.zeros(1))
            self._size += 1

    # ---- tokens -> rows
    def subword_rows(self, tokens: pa.Array, skip: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Input rows of the char n-grams of every token (Dictionary::computeSubwords), and
        the index of the token each row belongs to. ``skip``: a token that gets none (EOS)."""
        m = self.model
        if m.maxn <= 0 or len(tokens) == 0 or (m.prune_keys is not None and len(m.prune_keys) == 0):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        tokens = tokens.cast(pa.large_string())
        lt, gt, empty = (pa.scalar(c, pa.large_string()) for c in ("<", ">", ""))
        wrapped = pc.binary_join_element_wise(lt, tokens, gt, empty)
        bufs = wrapped.buffers()
        nt = len(wrapped)
        offs = np.frombuffer(bufs[1], dtype=np.int64, count=nt + 1, offset=wrapped.offset * 8)
        data = np.frombuffer(bufs[2], dtype=np.uint8)[offs[0] : offs[-1]]
        rel = offs - offs[0]
        cpos = np.flatnonzero((data & 0xC0) != 0x80)  # first byte of every UTF-8 character
        bnd = np.append(cpos, rel[-1])  # bnd[k + 1]: where the character after character k starts
        first = np.searchsorted(cpos, rel[:-1])  # first character of every token
        nchars = np.diff(np.append(first, len(cpos)))
        ctok = np.repeat(np.arange(nt), nchars)
        k = np.arange(len(cpos))
        if skip is not None:
            skipped = np.asarray(pc.equal(tokens, skip).to_numpy(zero_copy_only=False), dtype=bool)
            if skipped.any():
                k = k[~skipped[ctok]]
        tok = ctok[k]
        start_char = k - first[tok]
        left = nchars[tok] - start_char  # characters from this one to the end of its token
        # signed bytes, as fastText's hash reads them (uint32(int8_t(c)))
        sbytes = data.view(np.int8).astype(np.int32).view(np.uint32)
        h = np.full(len(k), _FNV_OFFSET, dtype=np.uint32)
        out_rows, out_tok = [], []
        for n in range(1, m.maxn + 1):
            alive = left >= n
            if not alive.all():
                k, tok, start_char, left, h = k[alive], tok[alive], start_char[alive], left[alive], h[alive]
            if len(k) == 0:
                break
            lo = bnd[k + n - 1]
            h ^= sbytes[lo]
            h *= _FNV_PRIME
            multi = np.flatnonzero(bnd[k + n] - lo > 1)  # characters of 2-4 bytes
            for j in range(1, 4):
                if len(multi) == 0:
                    break
                h[multi] = (h[multi] ^ sbytes[lo[multi] + j]) * _FNV_PRIME
                multi = multi[bnd[k[multi] + n] - lo[multi] > j + 1]
            if n < m.minn:
                continue
            if n == 1:  # not the "<" or ">" alone
                take = np.flatnonzero((start_char != 0) & (left != 1))
                ids, owners = h[take] % np.uint32(m.bucket), tok[take]
            else:
                ids, owners = h % np.uint32(m.bucket), tok
            if self._bucket_row is None:
                ids = ids.astype(np.int64) + m.nwords
            else:
                ids = self._bucket_row[ids]
                hit = np.flatnonzero(ids >= 0)
                ids, owners = ids[hit], owners[hit]
            out_rows.append(ids)
            out_tok.append(owners)
        if not out_rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(out_rows).astype(np.int64), np.concatenate(out_tok)

    def _sum_rows(self, rows: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
        """Sum of ``input[rows]`` per owner: float64 (n, dim), a token's sum in one row."""
        out = np.empty((n, self.model.dim), dtype=np.float64)
        for d in range(self.model.dim):
            out[:, d] = np.bincount(owner, weights=self._input_t[d][rows], minlength=n)
        return out

    def _lookup(self, distinct: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(n, dim) row sums and (n,) row counts of the distinct tokens of a batch."""
        keys = distinct.to_pylist()
        get = self._index.get
        idx = np.fromiter((get(w, -1) for w in keys), dtype=np.int64, count=len(keys))
        miss = np.flatnonzero(idx < 0)
        if len(miss):
            if self._size + len(miss) > self.max_cached_tokens:
                self._reset_cache()
                get = self._index.get
                idx = np.fromiter((get(w, -1) for w in keys), dtype=np.int64, count=len(keys))
                miss = np.flatnonzero(idx < 0)
            missing = distinct.take(pa.array(miss))
            # a token starting with the label prefix is a label for fastText: it contributes nothing
            label = np.asarray(pc.starts_with(missing, LABEL_PREFIX).to_numpy(zero_copy_only=False), dtype=bool)
            rows, owner = self.subword_rows(missing)
            if label.any():
                words = ~label[owner]
                rows, owner = rows[words], owner[words]
            self._sums.append(self._sum_rows(rows, owner, len(miss)))
            self._cnts.append(np.bincount(owner, minlength=len(miss)).astype(np.float64))
            new = np.arange(self._size, self._size + len(miss))
            self._index.update(zip([keys[i] for i in miss], new.tolist()))
            idx[miss] = new
            self._size += len(miss)
        if len(self._sums) > 1:
            self._sums = [np.concatenate(self._sums, axis=0)]
            self._cnts = [np.concatenate(self._cnts)]
        return self._sums[0][idx], self._cnts[0][idx]

    # ---- prediction
    def hidden(self, texts: pa.Array) -> np.ndarray:
        """The averaged input vector of every text (fastText ``computeHidden``), float64 (n, dim).

        ``texts`` must hold no ``\\n`` (fastText's ``predict`` refuses them).
        """
        m = self.model
        n = len(texts)
        if _has_nul(texts):  # fastText splits at NUL too; Arrow's ASCII whitespace does not include it
            texts = pc.replace_substring(texts, "\x00", " ")
        # empty tokens (at leading/trailing spaces) and labels are kept here: they add nothing
        values, parents = _flatten(pc.ascii_split_whitespace(texts))
        total = np.zeros((n, m.dim), dtype=np.float64)
        count = np.ones(n, dtype=np.float64)  # the EOS row
        if self._eos >= 0:
            total += self._vocab_sum[self._eos]
        if len(values):
            enc = pc.dictionary_encode(values)
            codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
            eos = pc.index(enc.dictionary, EOS).as_py()
            if eos >= 0:  # a literal "</s>" ends the line: the EOS that predict appends is never read
                at_eos = np.flatnonzero(codes == eos)
                first_eos = np.full(n, len(codes))
                np.minimum.at(first_eos, parents[at_eos], at_eos)
                eos_docs = np.unique(parents[at_eos])
                keep = np.arange(len(codes)) <= first_eos[parents]
                codes, parents = codes[keep], parents[keep]
                count[eos_docs] = 0.0
                total[eos_docs] = 0.0
            dsum, dcnt = self._lookup(enc.dictionary)
            # a text's tokens are contiguous and in order (parents never decrease): its sum is one
            # np.add.reduceat over the gathered (tokens, dim) rows, in blocks of TOKEN_BLOCK tokens so
            # that the gathered rows stay small (8 MiB), instead of one bincount per dimension
            tok = np.searchsorted(parents, np.arange(n + 1))
            d0 = 0
            while d0 < n:
                d1 = min(max(int(np.searchsorted(tok, tok[d0] + TOKEN_BLOCK, side="right")) - 1, d0 + 1), n)
                s, e = int(tok[d0]), int(tok[d1])
                if e > s:
                    seg = tok[d0:d1]
                    has = np.flatnonzero(tok[d0 + 1 : d1 + 1] > seg)
                    total[d0 + has] += np.add.reduceat(dsum[codes[s:e]], seg[has] - s, axis=0)
                d0 = d1
            count += np.bincount(parents, weights=dcnt[codes], minlength=n)
        return total / count[:, None]

    def predict(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(label index, probability) of the most likely label of every text, as
        ``fasttext``'s ``predict(text, k=1)`` reports them."""
        hid = self.hidden(texts)
        if self.model.loss == "hs":
            f = 1.0 / (1.0 + np.exp(-(hid @ self._out.T)))
            score = np.log(f + 1e-5) @ self._right + np.log(1.0 - f + 1e-5) @ self._left
        else:
            logits = hid @ self._out.T
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            score = np.log(p + 1e-5)
        best = np.argmax(score, axis=1)
        return best, np.exp(score[np.arange(len(best)), best])


def _has_nul(texts: pa.Array) -> bool:
    data = texts.buffers()[2]
    if data is None or len(texts) == 0:
        return False
    offs = np.frombuffer(texts.buffers()[1], dtype=np.int64, count=len(texts) + 1, offset=texts.offset * 8)
    return bool((np.frombuffer(data, dtype=np.uint8)[offs[0] : offs[-1]] == 0).any())


def _flatten(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    values = pc.list_flatten(lists)
    parents = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, parents
