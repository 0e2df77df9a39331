"""Grid sizes for the persistent-style backward kernels: one full wave of resident programs on the GPU.

A backward kernel that loops over rows and reduces a weight gradient per program wants as many programs as the
GPU holds at once, and no more: a fixed ``4 x SMs`` runs in 1.33 to 2 waves when fewer than 4 programs fit on an
SM (registers or warps run out), and a second, partial wave leaves SMs idle. The number that fits is read from
the compiled kernel (registers per thread, shared memory, warps) and the device's per-SM limits, once per kernel
variant; the interpreter (CPU) gets a small fixed grid.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

CPU_PROGRAMS = 4  # TRITON_INTERPRET=1: few programs keep the interpreter fast
_CACHE: dict[tuple, int] = {}


def resident_ctas(n_regs: int, num_warps: int, shared_bytes: int, *, regs_per_sm: int = 65536,
                  max_warps_per_sm: int = 64, smem_per_sm: int = 228 * 1024, max_ctas_per_sm: int = 32) -> int:
    """Programs (CTAs) of one kernel resident on one SM at a time: the tightest of the register file (registers
    are allocated per warp in units of 256, i.e. per thread in multiples of 8), the warp slots, shared memory and
    the CTA slots. At least 1."""
    regs = max(8, -(-n_regs // 8) * 8) * 32 * num_warps
    limits = [regs_per_sm // regs, max_warps_per_sm // num_warps, max_ctas_per_sm]
    if shared_bytes:
        limits.append(smem_per_sm // shared_bytes)
    return max(1, min(limits))


def full_wave_programs(kernel, args: tuple, kwargs: dict, device: torch.device) -> int:
    """How many programs of ``kernel`` (launched with ``args``/``kwargs``) fill ``device`` once: SMs x resident
    CTAs per SM on CUDA, :data:`CPU_PROGRAMS` elsewhere. Falls back to 4 per SM (logged once) when the compiled
    kernel cannot be inspected."""
    if device.type != "cuda":
        return CPU_PROGRAMS
    dtypes = tuple(str(a.dtype) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args)
    key = (getattr(kernel, "__name__", repr(kernel)), device.index, dtypes, tuple(sorted(kwargs.items())))
    if key in _CACHE:
        return _CACHE[key]
    props = torch.cuda.get_device_properties(device)
    sms = props.multi_processor_count
    try:
        compiled = kernel.warmup(*args, grid=(1,), **kwargs)  # compiles (or finds) the variant, does not launch
        compiled._init_handles()
        per_sm = resident_ctas(
            compiled.n_regs, compiled.metadata.num_warps, compiled.metadata.shared,
            regs_per_sm=getattr(props, "regs_per_multiprocessor", 65536),
            max_warps_per_sm=getattr(props, "max_threads_per_multi_processor", 2048) // 32,
            smem_per_sm=getattr(props, "shared_memory_per_multiprocessor", 228 * 1024),
        )
        log.debug("%s: %d registers, %d spills, %d B shared, %d warps -> %d per SM x %d SMs", key[0],
                  compiled.n_regs, getattr(compiled, "n_spills", -1), compiled.metadata.shared,
                  compiled.metadata.num_warps, per_sm, sms)
    except Exception as e:  # noqa: BLE001  (Triton internals differ between versions: keep the old grid)
        log.warning("%s: cannot read the compiled kernel's resources (%s: %s); using 4 programs per SM", key[0],
                    type(e).__name__, e)
        per_sm = 4
    _CACHE[key] = per_sm * sms
    return _CACHE[key]
