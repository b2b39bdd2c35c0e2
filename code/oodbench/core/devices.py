"""Choosing the torch device from --gpu / --device (layer 0)."""
import torch

from oodbench.core.paths import UserError


def pick_device(gpu, device=None, offset=0):
    """The torch device asked for; the CPU, said in one line, when CUDA is absent.
    ``offset`` is added to the GPU's index (under torchrun: each rank's local rank)."""
    if device:
        try:
            chosen = torch.device(device)
        except RuntimeError as e:
            raise UserError(f"--device {device!r}: {e}") from None
        if chosen.type == "cpu":
            return chosen
        gpu = 0 if chosen.index is None else chosen.index
    gpu = gpu + offset if gpu >= 0 else gpu
    if gpu < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        print("CUDA is not available: running on the CPU.")
        return torch.device("cpu")
    if gpu >= torch.cuda.device_count():
        raise UserError(f"GPU {gpu} does not exist: this machine has "
                        f"{torch.cuda.device_count()} CUDA device(s)"
                        + (f" (the GPU asked for + {offset}, this rank's local rank)"
                           if offset else ""))
    return torch.device("cuda", gpu)
