"""The detector interface (layer 3): what every detector declares and does.

A detector is made with its hyper-parameters (the papers' defaults unless given), fitted
once per model where it needs training-set statistics, and then scores images:
``score(features)`` gives one float per image, and **higher means more
in-distribution** for every detector. Gradient-free detectors read only the shared
feature pass (``features.Features``); a detector that needs input gradients (ODIN) says
so with ``needs_gradient`` and is run by the scoring code with the model itself.
"""
from oodbench.core.paths import UserError


def flag(param):
    """The command-line flag of a hyper-parameter: top_m -> --top-m."""
    return "--" + param.replace("_", "-")


class Detector:
    name = ""                 # the --method value
    label = ""                # as tables print it; also the score files' tag
    paper = ""                # citation, for --help and tables
    defaults = {}             # hyper-parameter -> the paper's value for CIFAR-10
    valid = {}                # hyper-parameter -> (test of a value, what it must be)
    needs_training = False    # fit() reads training-set features
    needs_gradient = False    # scores need the model and input gradients, not features
    class_conditional = False  # fit() reads the training images' class labels
    reads_penultimate = True  # reads the penultimate feature (or the head), not logits only
    layers = None             # the layers it reads: None, the declared ones; "conv", LA-OOD's

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            has = ", ".join(flag(p) for p in self.defaults) or "none"
            raise UserError(f"{self.name} has no parameter {', '.join(map(flag, unknown))} "
                            f"(its parameters: {has})")
        self.params = {**self.defaults, **params}
        for name, (test, must_be) in self.valid.items():
            value = self.params[name]
            if value is not None and not test(value):
                raise UserError(f"{self.name}: {flag(name)} must be {must_be}, got {value}")
        self.fitted = not self.needs_training

    def fit(self, train, head):
        """Fit on the training set's Features (None when ``needs_training`` is False) and
        the classifier's Head (features.Head); returns self."""
        self.fitted = True
        return self

    def check(self, width, train_size):
        """Refuse, before any feature pass, hyper-parameters that cannot fit features of
        ``width`` values and ``train_size`` training images (None: no training set)."""

    def check_classes(self, num_classes):
        """Refuse, before any work, hyper-parameters that cannot apply to ``num_classes``."""

    def score(self, features):
        """One float per image of ``features``; higher = more in-distribution."""
        if not self.fitted:
            raise RuntimeError(f"{self.name}: fit() before score()")
        return self.compute(features)

    def compute(self, features):
        raise NotImplementedError

    def describe(self):
        """'Energy (T=1)': the label with the hyper-parameters, for notes and tables."""
        values = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.label} ({values})" if values else self.label
