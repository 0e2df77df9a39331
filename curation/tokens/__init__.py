"""Token streams: tokenise, pack, globally shuffle and mix curated documents into Arrow files.

Public API::

    from curation.tokens import train_tokenizer, build_token_stream, TokenStream, SourceSpec

    model = train_tokenizer(["runs/web"], "out/tok/spm", vocab_size=32000)
    manifest = build_token_stream([("runs/web", 0.7), ("runs/code", 0.3)], "out/tokens", model, seq_len=2048)
    # or with a config shared by several builds: build_token_stream(runs, out, model, TokenStreamConfig(seed=1))
    ts = TokenStream("out/tokens", seed=0, rank=0, world_size=1)

Format (DESIGN.md, "Token streams"): Arrow IPC *streaming* files with one column
``tokens: fixed_size_list<uint16|uint32>[seq_len + 1]`` plus ``manifest.json``.
This package never imports torch.
"""

from curation.tokens.build import TokenStreamConfig, build_token_stream
from curation.tokens.mix import SourceSpec, parse_source
from curation.tokens.stream import TokenStream
from curation.tokens.tokenizer import TokenizerInfo, load_tokenizer, token_dtype, train_tokenizer

__all__ = [
    "SourceSpec",
    "TokenStream",
    "TokenStreamConfig",
    "TokenizerInfo",
    "build_token_stream",
    "load_tokenizer",
    "parse_source",
    "token_dtype",
    "train_tokenizer",
]
