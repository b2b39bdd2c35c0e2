"""ODIN's scoring under the release's module name: temperature scaling and gradient-sign
input perturbation, batched.

The code is oodbench.scoring.odin_scoring (code/oodbench/scoring/odin_scoring.py); this
module keeps the release's name for those who ``import calData`` from code/.
"""
from oodbench.scoring.odin_scoring import (SCORING_VERSION, Scores, gradient_sign,  # noqa: F401
                                           normaliser, odin_batch, pad_to, perturbed_msp,
                                           score_dataset, write_scores)
