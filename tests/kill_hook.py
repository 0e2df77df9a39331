"""SIGKILL this whole process group when a chosen pass item starts (for the resume-after-kill tests).

``spec`` names a pass function (``module``, ``function``) and ``when``: argument index -> value, all of which
must match. The wrapper keeps the function's module and name, so the pass hashes (and markers) are those of a
normal run.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
from typing import Any


def kill_when(spec: dict[str, Any]) -> None:
    mod = importlib.import_module(spec["module"])
    original = getattr(mod, spec["function"])
    when = {int(k): v for k, v in spec["when"].items()}

    @functools.wraps(original)
    def killing(*args):  # noqa: ANN002, ANN202 - same signature as the watched function
        if all(args[i] == v for i, v in when.items()):
            os.killpg(os.getpgrp(), signal.SIGKILL)
        return original(*args)

    setattr(mod, spec["function"], killing)
