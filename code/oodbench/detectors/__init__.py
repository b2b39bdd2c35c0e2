"""The detectors (layer 3): one module per method behind one interface (base.py), and the
registry of their --method names. Every score means higher = more in-distribution."""
from oodbench.core.paths import UserError
from oodbench.detectors.ash import ASH
from oodbench.detectors.energy import Energy
from oodbench.detectors.gen import GEN
from oodbench.detectors.knn import KNN
from oodbench.detectors.laood import LAOOD
from oodbench.detectors.mahalanobis import Mahalanobis
from oodbench.detectors.maxlogit import MaxLogit
from oodbench.detectors.msp import MSP
from oodbench.detectors.odin import ODIN
from oodbench.detectors.react import ReAct
from oodbench.detectors.relative_mahalanobis import RelativeMahalanobis
from oodbench.detectors.vim import ViM

DETECTORS = {d.name: d for d in (ODIN, MSP, Energy, MaxLogit, GEN, Mahalanobis,
                                 RelativeMahalanobis, KNN, ReAct, ViM, ASH, LAOOD)}
FEATURE_DETECTORS = tuple(name for name, d in DETECTORS.items() if not d.needs_gradient)


def get_detector(name):
    """The detector class of --method ``name``; a UserError naming the choices if unknown."""
    if name not in DETECTORS:
        raise UserError(f"unknown method {name!r}; choose from {', '.join(DETECTORS)}")
    return DETECTORS[name]


def make(name, **params):
    """A detector with the papers' defaults, except ``params``."""
    return get_detector(name)(**params)
