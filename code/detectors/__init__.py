"""The detectors (layer 3): one module per method behind one interface (base.py), and the
registry of their --method names. Every score means higher = more in-distribution."""
from detectors.ash import ASH
from detectors.energy import Energy
from detectors.gen import GEN
from detectors.knn import KNN
from detectors.laood import LAOOD
from detectors.mahalanobis import Mahalanobis
from detectors.maxlogit import MaxLogit
from detectors.msp import MSP
from detectors.odin import ODIN
from detectors.react import ReAct
from detectors.relative_mahalanobis import RelativeMahalanobis
from detectors.vim import ViM
from paths import UserError

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
