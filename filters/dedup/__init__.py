"""Deduplication stages: exact (text / URL), MinHash-LSH fuzzy, and BFF-style Bloom paragraph dedup.

All are :class:`curation.stage.GlobalStage` s (fit over every shard with Ray map/reduce
passes, then applied per shard), except :class:`BloomDedupShard`, a per-shard
:class:`curation.stage.Mapper` (the way DCLM-Baseline ran BFF).
"""

from .bloom import BloomDedup, BloomDedupShard, BloomFilter, bloom_size
from .exact import ExactDedup
from .minhash import MinHashDedup, minhash_signatures, s_curve

__all__ = [
    "BloomDedup",
    "BloomDedupShard",
    "BloomFilter",
    "ExactDedup",
    "MinHashDedup",
    "bloom_size",
    "minhash_signatures",
    "s_curve",
]
