"""What every benchmark records beside its numbers: the machine and the commit (DESIGN.md)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commit() -> str:
    """The short git commit of the checkout, or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine() -> str:
    """CPU model, cores, memory, load, and the GPU when torch (already imported) sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    desc = f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, load avg {load:.1f}, Python {platform.python_version()}"
    torch = sys.modules.get("torch")
    if torch is not None:
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
        desc += f", torch {torch.__version__}, {gpu}"
    return desc
