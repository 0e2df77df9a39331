"""Deduplication stages: exact (text / URL), MinHash-LSH fuzzy, BFF-style Bloom paragraph dedup, and
exact-substring dedup (suffix arrays within a partition, minimizer anchors across partitions).

All are :class:`curation.stage.GlobalStage` s (fit over every shard as a sequence of resumable
passes, then applied per shard), except :class:`BloomDedupShard`, a per-shard
:class:`curation.stage.Mapper` (the way DCLM-Baseline ran BFF). Each global stage takes a frozen
config dataclass (or the same settings as keyword arguments) and returns a typed fitted state.
"""

from .bloom import BloomDedupShard, BloomFilter, bloom_size
from .bloom_global import BffDecisions, BloomConfig, BloomDedup
from .common import RemovalLists
from .exact import ExactDedup, ExactDedupConfig
from .minhash import MinHashConfig, MinHashDedup, minhash_signatures, s_curve
from .substring import SubstringConfig, SubstringDecisions, SubstringDedup

__all__ = [
    "BffDecisions",
    "BloomConfig",
    "BloomDedup",
    "BloomDedupShard",
    "BloomFilter",
    "ExactDedup",
    "ExactDedupConfig",
    "MinHashConfig",
    "MinHashDedup",
    "RemovalLists",
    "SubstringConfig",
    "SubstringDecisions",
    "SubstringDedup",
    "bloom_size",
    "minhash_signatures",
    "s_curve",
]
