"""The MC Dropout score of the FSSD suite (layer 3: detectors).

MC Dropout (Gal & Ghahramani, ICML 2016): dropout left on at test time, the softmax averaged
over PASSES stochastic passes; score = the largest class probability of the mean (FSSD's
``mean`` score, lib/inference/MCDropout at their first release; 32 passes as there).

FSSD's own MC-Dropout LeNet could not run as released (a stub loader, a loss on raw logits),
so this uses the benchmark's LeNet with the dropout it was trained with (Dropout2d 0.25
after the pool, dropout 0.5 after fc1), the network MC Dropout's paper samples from. The
part of the network before the first dropout is deterministic, so it runs once per image
and only the head runs PASSES times (the same numbers, 10x less work).
"""
import torch
from torch.nn import functional as F

PASSES = 32


def mc_dropout_score(model, inputs, passes=PASSES, seed=0):
    """[N] max over classes of the mean softmax of ``passes`` dropout passes (seeded)."""
    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):   # the caller's random state is left alone
        torch.manual_seed(seed)
        model.train()      # only dropout changes: the LeNet has no batch norm
        try:
            with torch.no_grad():
                pooled = model.trunk(inputs)
                mean = sum(F.softmax(model.head(pooled), dim=1) for _ in range(passes)) / passes
        finally:
            model.eval()
    return mean.max(dim=1).values
