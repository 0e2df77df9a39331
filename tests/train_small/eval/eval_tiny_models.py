"""Tiny models and a character tokenizer shared by the eval tests (real torch modules, no mocks)."""

from __future__ import annotations

import torch

ALPHA = "abcdefghijklmnopqrstuvwxyz"
TEXT = ("The king rode out at dawn. The queen stayed in the tower and read the letters. "
        "A knight of the realm came to the gate, and the guards let him in. ") * 40  # fmt: skip


def train_curation_tokenizer(root) -> str:  # noqa: ANN001
    """Our curation tokenizer (SentencePiece BPE, dummy prefix, whitespace kept, Llama-style ids: unk 0, <s> 1,
    </s> 2) trained on a little text in ``root``; returns the .model path."""
    import pyarrow.parquet as pq

    from curation.schema import docs_table
    from curation.tokens.tokenizer import train_tokenizer

    lines = TEXT.replace(". ", ".\n").split("\n")
    pq.write_table(docs_table([str(i) for i in range(len(lines))], lines, "t"), root / "docs.parquet")
    return train_tokenizer([str(root / "docs.parquet")], str(root / "tok"), vocab_size=300)


class CharTok:
    """Character tokenizer: ' ' -> 1, 'a'..'z' -> 2..27, '\\n' -> 28, '.' -> 29, EOS 0."""

    eos_id = 0

    def encode(self, text: str) -> list[int]:
        table = {" ": 1, "\n": 28, ".": 29, ":": 30}
        return [table[c] if c in table else 2 + ALPHA.index(c) for c in text.lower() if c in table or c in ALPHA]


V = 32


class TableLM(torch.nn.Module):
    """A bigram model whose next-token log-probs are a hand-set table: logits[b, t] = table[idx[b, t]]."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table.clone())
        self.max_seq_len = 512

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx]


def alphabet_table(strength: float = 8.0) -> torch.Tensor:
    """Strongly prefers the next letter of the alphabet (z -> a) and a space after '.'; uniform-ish elsewhere."""
    t = torch.zeros(V, V)
    for i in range(26):
        t[2 + i, 2 + (i + 1) % 26] = strength
    return t


class TinyCausal(torch.nn.Module):
    """A random causal transformer: padding / position bugs in a batched scorer change its outputs."""

    def __init__(self, vocab: int = V, d: int = 32, n_layers: int = 2, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(128, d)
        layer = torch.nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        self.body = torch.nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.max_seq_len = 128
        self.eval()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        mask = torch.nn.Transformer.generate_square_subsequent_mask(T)
        h = self.emb(idx) + self.pos(torch.arange(T))[None]
        return self.head(self.body(h, mask=mask, is_causal=True))
