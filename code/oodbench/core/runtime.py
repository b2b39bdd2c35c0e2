"""Process-wide speed settings (layer 0), each kept because scripts/bench.py shows it helps.

* glibc malloc: DenseNet's large, short-lived activation buffers cross glibc's
  default mmap threshold, so every batch maps and unmaps them again (page faults,
  kernel time). Raising the mmap and trim thresholds keeps them in the heap for reuse.
* channels_last memory format for the CPU's oneDNN convolutions.
* torch.compile (inductor) on the CPU for long runs: it fuses the BN-ReLU chains
  of the forward and backward passes. Compiling costs about 80 s the first time
  and a few seconds once its cache (runs/.cache/inductor) is warm, so ``auto``
  compiles only runs of at least COMPILE_MIN_IMAGES images, and only where a C++
  compiler exists. On CUDA ``auto`` stays eager (not measured here).
"""
import ctypes
import logging
import os
import shutil
import sys

import torch

from oodbench.core.paths import cache_dir

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
COMPILE_MIN_IMAGES = 4000


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


def should_compile(mode, device, images):
    if mode != "auto":
        return mode == "on"
    return (torch.device(device).type == "cpu" and images >= COMPILE_MIN_IMAGES
            and shutil.which(os.environ.get("CXX", "g++")) is not None)


def prepare_model(model, device, compile_model=False):
    """The model on ``device``: channels_last on the CPU, compiled when asked."""
    model = model.to(device)
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    if compile_model:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
        if not torch.cuda.is_available():
            # inductor's C++ toolchain looks for CUDA and warns "No CUDA runtime is found,
            # using CUDA_HOME=..." on every CPU machine: harmless, and the first thing a new
            # user would read, so kept off a CPU run
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        model = torch.compile(model, dynamic=False)
    return model
