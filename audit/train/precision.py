"""Which arithmetic training runs in: fp32, or bf16 autocast on CPUs with bf16 units.

The precision is part of a trained model's identity: the same recipe trained in bf16 and in fp32 gives different
weights, so it is recorded with every model (pretrain.json, finetune.json), keys the trained-model cache and is
reported in results.json and the report.
"""

from __future__ import annotations

from pathlib import Path

import torch


def cpu_has_bf16_units() -> bool:
    """True when the CPU has AVX512-BF16 or AMX tiles, where bf16 autocast speeds training up."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def use_bf16(precision: str, *, hidden_size: int | None = None) -> bool:
    """bf16 autocast when asked, or on "auto" when the CPU has bf16 units (fp32 otherwise).

    On "auto", models narrower than 128 run in fp32: at such sizes autocast's casts cost more than bf16 saves.
    """
    if precision != "auto":
        return precision == "bf16"
    if hidden_size is not None and hidden_size < 128:
        return False
    return cpu_has_bf16_units()


def resolved_precision(precision: str, *, hidden_size: int | None = None) -> str:
    """The precision a setting of "auto" | "bf16" | "fp32" trains in on this machine: "bf16" or "fp32"."""
    return "bf16" if use_bf16(precision, hidden_size=hidden_size) else "fp32"


def cpu_model_name() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), or the platform's processor string elsewhere."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_vector_isa() -> str:
    """The widest vector instruction set torch's CPU kernels use here (e.g. "AVX2", "AVX512"): kernels differ by it,
    and so does fp32 rounding in their last bits."""
    return torch.backends.cpu.get_cpu_capability()


if __name__ == "__main__":  # what CI logs print: which arithmetic this machine's training runs in
    print(f"CPU: {cpu_model_name()}; vector ISA: {cpu_vector_isa()}; bf16 units: "
          f"{'yes' if cpu_has_bf16_units() else 'no'}; training precision on 'auto': {resolved_precision('auto')}")
