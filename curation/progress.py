"""Driver-side progress: shards done / total and documents per second (tqdm)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.t0 = time.time()
        self.docs = 0
        self.failed = 0
        self.bar = tqdm(total=total, desc=desc, unit="shard", disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    def update(self, docs: int, failed: bool = False) -> None:
        self.docs += docs
        self.failed += int(failed)
        rate = self.docs / max(time.time() - self.t0, 1e-9)
        post = {"docs": self.docs, "docs/s": f"{rate:,.0f}"}
        if self.failed:
            post["failed"] = self.failed
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
