"""bf16 autocast only on a CPU that runs it natively.

PyTorch hands bf16 convolutions to oneDNN only on x86 CPUs with AVX-512 (Intel since Skylake-SP, AMD
since Zen 4); on one with AVX2 alone (AMD Zen 1-3, most Intel laptops) they fall back to a generic
kernel that trains the fast recipe many times slower than float32 (BENCHMARKS.md). A config's
``bf16-mixed`` is a recipe's choice for speed, so on such a CPU the CLI trains in float32 instead; so
it does for ``bf16-true``, and for ``16-mixed``, which Lightning turns into ``bf16-mixed`` on a CPU.
"""

from __future__ import annotations

import platform

import torch
from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator

SLOW = "bf16-mixed"
INSTEAD = "32-true"
BF16_ON_A_CPU = (SLOW, "bf16-true", "16-mixed")  # what a CPU runs in bf16


def emulates_bf16(accelerator) -> bool:
    """Whether ``trainer.accelerator`` runs on this machine's CPU and that is an x86 CPU without AVX-512.
    Other CPUs (ARM) are left alone: their bf16 support is not told by a public PyTorch call."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if torch.backends.cpu.get_cpu_capability() == "AVX512":
        return False
    if accelerator == "cpu":
        return True
    if accelerator != "auto":
        return False  # a GPU, or an accelerator object
    return not any(kind.is_available() for kind in (CUDAAccelerator, MPSAccelerator, XLAAccelerator))


def precision_for_this_cpu(precision, accelerator, insisted: bool) -> tuple[str | None, str | None]:
    """The precision to train in, and a line that says why it is not the one asked for (else None).
    ``insisted``: the precision was given on the command line, not by a config file; it is kept."""
    if str(precision) not in BF16_ON_A_CPU or insisted or not emulates_bf16(accelerator):
        return precision, None
    capability = torch.backends.cpu.get_cpu_capability()
    return INSTEAD, (
        f"trainer.precision: {precision} runs many times slower than float32 on this CPU ({capability}, no "
        f"AVX-512: no native bf16); training in {INSTEAD} (give --trainer.precision {precision} on the "
        "command line to insist)"
    )
