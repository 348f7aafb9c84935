"""Which arithmetic a run trains in: bf16 autocast where the hardware runs it natively,
fp32 elsewhere.

oneDNN runs bf16 convs and matmuls on Intel AMX (Sapphire Rapids on) and AVX512_BF16
(Cooper Lake, AMD Zen 4 on): 2-3x fp32's images/s for the fast net (docs/performance.md).
Without either, PyTorch emulates bf16 and is slower than fp32, so `auto` never picks it
there. Under autocast, convs and linears run in bf16; BatchNorm keeps fp32 parameters,
running statistics and accumulation, and the loss is computed on fp32 logits.
"""

from __future__ import annotations

from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo's names, the faster first


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); elsewhere, PyTorch's own bf16 probe."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return _torch_flags()


def _torch_flags() -> frozenset[str]:
    import torch

    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return frozenset(name for name, fn in (("avx512_bf16", probe), ("amx_bf16", amx)) if fn is not None and fn())


def cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve(name: str, device_type: str, flags: frozenset[str] | None = None) -> tuple[str, str]:
    """(precision, why) for a run on `device_type` ("cpu", "cuda") asked for `name`."""
    if name == "fp32":
        return "fp32", "asked for"
    if device_type not in ("cpu", "cuda"):
        return "fp32", f"bf16 autocast is used on CPUs and CUDA GPUs only, not {device_type}"
    if device_type == "cuda":
        if name == "bf16":
            return "bf16", "asked for"
        return (
            ("bf16", "auto: this GPU runs bf16 natively")
            if cuda_bf16()
            else ("fp32", "auto: this GPU has no native bf16")
        )
    flags = cpu_flags() if flags is None else flags
    native = next((f for f in BF16_FLAGS if f in flags), None)
    if name == "bf16":
        return "bf16", "asked for" if native else "asked for; this CPU has no native bf16 (emulated: slower than fp32)"
    if native:
        return "bf16", f"auto: the CPU reports {native}"
    return "fp32", "auto: the CPU reports neither amx_bf16 nor avx512_bf16 (emulated bf16 is slower than fp32)"
