"""How close a timed path runs to this machine's matrix-multiply speed, and what speed-up that leaves possible.

A speed ratio between two ways of computing the same thing has two possible sources: doing less arithmetic, or
doing the same arithmetic at a higher rate. The second is capped by the hardware. This module measures that cap
for the benchmarks (the roofline view of Williams, Waterman & Patterson, CACM 2009, reduced to its compute roof):

- ``matmul_peak``: the fastest fp32 matrix multiply of the given shape on this machine at the current thread
  count, in FLOP/s (best of several timed runs, so it is the roof, not a typical rate);
- ``count_flops``: the multiply-add FLOPs (2 per multiply-accumulate) a call performs in matrix products and
  attention, counted by PyTorch's ``FlopCounterMode`` — plus the CPU flash-attention kernel, which it does not
  know, registered below with the formula of the unfused attention;
- ``RooflineReport``: time and FLOPs of a path → its share of the roof, and the shortest time the same
  arithmetic could take here (FLOPs / roof). Dividing a baseline's time by that shortest time bounds any ratio a
  faster execution of the same arithmetic could show on this machine.

Elementwise work (LayerNorm, softmax, GELU, residual adds, copies) is not counted, so a path's share of the roof
also says how much of its time that work takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils import flop_counter

_aten = torch.ops.aten


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_flash_attention_backward_flops(grad_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                                        **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


def _register_cpu_kernels() -> None:
    registry = flop_counter.flop_registry
    extra = {
        _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops,
        _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_attention_backward_flops,
    }
    for operator, formula in extra.items():
        if operator.default not in registry:
            flop_counter.register_flop_formula(operator)(formula)


_register_cpu_kernels()


def count_flops(function: Callable[[], object]) -> tuple[object, int]:
    """(result, FLOPs in matrix products and attention) of ``function()``; forward and backward both count."""
    with flop_counter.FlopCounterMode(display=False) as counter:
        result = function()
    return result, int(counter.get_total_flops())


def matmul_peak(rows: int, inner: int, columns: int, *, repeats: int = 30) -> float:
    """FLOP/s of the fastest of ``repeats`` fp32 (rows × inner) @ (inner × columns) products with a bias."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, inner, generator=generator)
    weight = torch.randn(columns, inner, generator=generator)
    bias = torch.randn(columns, generator=generator)
    with torch.inference_mode():
        for _ in range(5):
            torch.nn.functional.linear(x, weight, bias)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            torch.nn.functional.linear(x, weight, bias)
            best = min(best, time.perf_counter() - started)
    return 2.0 * rows * inner * columns / best


@dataclass(frozen=True)
class RooflineReport:
    """A timed path against the machine's matrix-multiply roof."""

    seconds: float
    flops: int
    peak_flops_per_second: float

    @property
    def achieved(self) -> float:
        """FLOP/s the path sustained over its whole wall time."""
        return self.flops / self.seconds

    @property
    def share_of_peak(self) -> float:
        return self.achieved / self.peak_flops_per_second

    @property
    def floor_seconds(self) -> float:
        """The shortest time the same arithmetic could take here: every FLOP at the roof, nothing else."""
        return self.flops / self.peak_flops_per_second

    def describe(self, label: str) -> str:
        return (f"{label}: {self.flops / 1e12:.3f} TFLOP in matrix products in {self.seconds:.2f} s = "
                f"{self.achieved / 1e9:.0f} GFLOP/s, {100 * self.share_of_peak:.0f}% of the measured fp32 matrix "
                f"multiply roof ({self.peak_flops_per_second / 1e9:.0f} GFLOP/s); the same arithmetic at the roof "
                f"would take {self.floor_seconds:.2f} s")

    def ratio_bound(self, baseline_seconds: float) -> float:
        """The largest ratio baseline / this path that any faster execution of the same arithmetic could show."""
        return baseline_seconds / self.floor_seconds
