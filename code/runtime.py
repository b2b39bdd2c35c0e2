"""Process-wide speed settings, each kept because scripts/bench.py shows it helps.

* glibc malloc: DenseNet's large, short-lived activation buffers cross glibc's
  default mmap threshold, so every batch maps and unmaps them again (page faults,
  kernel time). Raising the mmap and trim thresholds keeps them in the heap for reuse.
* channels_last memory format for the CPU's oneDNN convolutions.
"""
import ctypes
import sys

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def configure_allocator():
    """Keep large buffers in glibc's heap (a no-op where glibc is absent)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
                    and libc.mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))
    except (OSError, AttributeError):
        return False


def prepare_model(model, device):
    """The model on ``device``, channels_last on the CPU."""
    model = model.to(device)
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model
