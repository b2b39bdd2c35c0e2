"""Each detector on a case worked out by hand, the interface's promises (higher = more
in-distribution, no image's score depends on another's), and the registry's errors."""
import math

import numpy as np
import pytest

from oodbench import detectors
from oodbench.core.paths import UserError
from oodbench.detectors import knn
from oodbench.detectors.ash import ash_s
from oodbench.detectors.vim import principal_dimension
from oodbench.scoring.features import Features, Head


def feats(penultimate, head=None, labels=None, logits=None):
    """Features of a linear "network": logits = head(penultimate) unless given."""
    penultimate = np.asarray(penultimate, dtype=np.float32)
    if logits is None:
        logits = head.logits(penultimate)
    labels = np.full(len(penultimate), -1) if labels is None else np.asarray(labels)
    return Features(np.asarray(logits, dtype=np.float32), penultimate, {}, labels)


def from_logits(logits):
    logits = np.asarray(logits, dtype=np.float32)
    return Features(logits, np.zeros((len(logits), 1), np.float32), {}, -np.ones(len(logits)))


IDENTITY2 = Head(np.eye(2, dtype=np.float32), np.zeros(2, np.float32))


def fitted(name, train=None, head=IDENTITY2, **params):
    return detectors.make(name, **params).fit(train, head)


# ---- logit-only detectors: softmax of (0, ln 3) is (1/4, 3/4) ----

LOGITS = [[0.0, math.log(3)]]


def test_msp_energy_maxlogit_gen_by_hand():
    x = from_logits(LOGITS)
    assert fitted("msp").score(x)[0] == pytest.approx(0.75, abs=1e-7)
    assert fitted("energy").score(x)[0] == pytest.approx(math.log(4), abs=1e-6)
    assert fitted("energy", temperature=2.0).score(x)[0] == pytest.approx(
        2 * math.log(1 + math.sqrt(3)), abs=1e-6)
    assert fitted("maxlogit").score(x)[0] == pytest.approx(math.log(3), abs=1e-6)
    assert fitted("gen").score(x)[0] == pytest.approx(-2 * (3 / 16) ** 0.1, abs=1e-6)


def test_gen_sums_the_m_largest_probabilities():
    x = from_logits([[0.0, math.log(2), math.log(5)]])      # softmax (1/8, 2/8, 5/8)

    def term(p):
        return (p * (1 - p)) ** 0.1
    assert fitted("gen", top_m=2).score(x)[0] == pytest.approx(-(term(5 / 8) + term(2 / 8)))
    assert fitted("gen", top_m=1, gamma=0.5).score(x)[0] == pytest.approx(
        -(5 / 8 * 3 / 8) ** 0.5)


# ---- Mahalanobis and Relative Mahalanobis: two classes, a cross of 4 points each ----

CROSS = np.array([[-1, 0], [1, 0], [0, 1], [0, -1]], dtype=float)
TRAIN_2D = feats(np.r_[CROSS, CROSS + [10, 0]], IDENTITY2, labels=[0] * 4 + [1] * 4)


def test_mahalanobis_by_hand():
    # class means (0,0), (10,0); tied covariance diag(1/2, 1/2): precision 2 I
    detector = fitted("mahalanobis", TRAIN_2D)
    scores = detector.score(feats([[0, 0], [3, 4], [10, 1]], IDENTITY2))
    np.testing.assert_allclose(scores, [0, -2 * 25, -2 * 1], atol=1e-9)


def test_relative_mahalanobis_by_hand():
    # background: mean (5, 0), variances 25.5 (x) and 0.5 (y)
    detector = fitted("rmd", TRAIN_2D)
    point = feats([[0, 0], [5, 0]], IDENTITY2)
    background = np.array([25 / 25.5, 0.0])
    nearest_class = np.array([0.0, 2 * 25])
    np.testing.assert_allclose(detector.score(point), background - nearest_class, atol=1e-9)


# ---- KNN: the four unit vectors ----

def test_knn_by_hand():
    train = feats([[3, 0], [0, 1], [-2, 0], [0, -5]], IDENTITY2)   # normalised: +-e1, +-e2
    test = feats([[2, 0], [1, 1]], IDENTITY2)
    for k, expected in [(1, [0, math.sqrt(2 - math.sqrt(2))]),
                        (2, [math.sqrt(2), math.sqrt(2 - math.sqrt(2))]),
                        (4, [2, math.sqrt(2 + math.sqrt(2))])]:
        np.testing.assert_allclose(fitted("knn", train, k=k).score(test), -np.array(expected),
                                   atol=1e-3)


def test_knn_k_larger_than_the_training_set_is_refused():
    with pytest.raises(UserError, match="k must be"):
        fitted("knn", feats([[1, 0]], IDENTITY2), k=2)


# ---- ReAct: activations 1..10, p = 90 clips at 9.1 ----

def test_react_by_hand():
    head = Head(np.array([[1.0], [0.0]], np.float32), np.zeros(2, np.float32))
    train = feats(np.arange(1, 11)[:, None], head)
    detector = fitted("react", train, head)
    assert detector.threshold == pytest.approx(9.1)
    scores = detector.score(feats([[20.0], [2.0]], head))
    np.testing.assert_allclose(scores, [np.logaddexp(9.1, 0), np.logaddexp(2, 0)], rtol=1e-6)


# ---- ViM: W = the first two axes, b = 0, so the origin is 0; D = 2 leaves the third axis ----

def test_vim_by_hand():
    head = Head(np.array([[1, 0, 0], [0, 1, 0]], np.float32), np.zeros(2, np.float32))
    train = feats([[3, 0, 0], [-3, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 1], [0, 0, -1]], head)
    detector = fitted("vim", train, head, dim=2)
    # mean largest logit 5/6, mean residual norm 1/3
    assert detector.alpha == pytest.approx(2.5)
    scores = detector.score(feats([[0, 0, 2], [1, 0, 0]], head))
    np.testing.assert_allclose(scores, [math.log(2) - 5, np.logaddexp(1, 0)], rtol=1e-6)


def test_vim_origin_is_where_every_logit_is_zero():
    rng = np.random.default_rng(0)
    head = Head(rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=3).astype(np.float32))
    train = feats(rng.normal(size=(50, 6)), head)
    detector = fitted("vim", train, head)
    np.testing.assert_allclose(head.weight @ detector.origin + head.bias, 0, atol=1e-5)


def test_vim_dimension_rule():
    widths = (64, 342, 768, 1024, 2048)
    assert [principal_dimension(w) for w in widths] == [32, 171, 512, 512, 1000]


# ---- ASH-S: keep the top half of (1, 2, 3, 4), scale by exp(10 / 7) ----

def test_ash_by_hand():
    shaped = ash_s(np.array([[1.0, 2.0, 3.0, 4.0]]), 50)
    np.testing.assert_allclose(shaped, [[0, 0, 3 * math.exp(10 / 7), 4 * math.exp(10 / 7)]])
    head = Head(np.eye(4, dtype=np.float32), np.zeros(4, np.float32))
    score = fitted("ash", None, head, percentile=50).score(feats([[1, 2, 3, 4]], head))
    expected = np.logaddexp.reduce([0, 0, 3 * math.exp(10 / 7), 4 * math.exp(10 / 7)])
    assert score[0] == pytest.approx(expected, rel=1e-6)


def test_ash_rounds_the_pruned_count_as_the_authors():
    # n = 7, p = 50: round(3.5) = 4 values pruned (not floor's 3), 3 kept
    shaped = ash_s(np.array([[7.0, 1.0, 6.0, 2.0, 5.0, 3.0, 4.0]]), 50)
    np.testing.assert_allclose(shaped, np.array([[7, 0, 6, 0, 5, 0, 0]]) * np.exp(28 / 18))


def test_ash_of_an_all_zero_activation_is_finite():
    head = Head(np.eye(4, dtype=np.float32), np.zeros(4, np.float32))
    assert np.isfinite(fitted("ash", None, head, percentile=50).score(feats([[0] * 4], head)))


# ---- the interface ----

@pytest.fixture(scope="module")
def random_model():
    """Training and test features of a random linear model, 10 classes, width 32."""
    rng = np.random.default_rng(1)
    head = Head(rng.normal(size=(10, 32)).astype(np.float32),
                rng.normal(size=10).astype(np.float32))
    train = feats(np.abs(rng.normal(size=(400, 32))), head, labels=np.arange(400) % 10)
    test = feats(np.abs(rng.normal(size=(70, 32))), head)
    return train, test, head


@pytest.mark.parametrize("name", detectors.FEATURE_DETECTORS)
def test_an_images_score_does_not_depend_on_the_others(name, random_model, monkeypatch):
    monkeypatch.setattr(knn, "CHUNK", 16)   # KNN's chunks then split the 70 images
    train, test, head = random_model
    small = {"subsample": 100} if name == "laood" else {}   # 400 training images here
    detector = fitted(name, train, head, **small)
    whole = detector.score(test)
    parts = np.concatenate([detector.score(test.take(slice(a, a + 9))) for a in range(0, 70, 9)])
    assert whole.shape == (70,) and np.all(np.isfinite(whole))
    np.testing.assert_allclose(parts, whole, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["mahalanobis", "rmd", "knn"])
def test_training_images_score_higher_than_far_away_ones(name, random_model):
    """Higher = more in-distribution: a training image beats the same image moved far off."""
    train, _, head = random_model
    detector = fitted(name, train, head)
    near = train.take(slice(0, 20))
    far = feats(-5 * near.penultimate - 10, head)   # the training features are all > 0
    assert np.all(detector.score(near) > detector.score(far))


def test_a_fitted_detector_must_be_fitted_first(random_model):
    with pytest.raises(RuntimeError, match="fit"):
        detectors.make("knn").score(random_model[1])


def test_unknown_method_and_unknown_parameter_are_one_line_errors():
    with pytest.raises(UserError, match="unknown method 'nope'; choose from odin, msp"):
        detectors.make("nope")
    with pytest.raises(UserError, match=r"energy has no parameter --k \(its parameters: "
                                        r"--temperature\)"):
        detectors.make("energy", k=3)
    with pytest.raises(UserError, match="msp has no parameter --top-m .*none"):
        detectors.make("msp", top_m=3)


@pytest.mark.parametrize("name, params, message", [
    ("knn", {"k": 0}, "knn: --k must be >= 1, got 0"),
    ("react", {"percentile": 120}, r"react: --percentile must be in \(0, 100\], got 120"),
    ("react", {"percentile": math.nan}, "react: --percentile must be in"),
    ("ash", {"percentile": -1}, r"ash: --percentile must be in \[0, 100\), got -1"),
    ("gen", {"gamma": 0}, "gen: --gamma must be a finite number > 0, got 0"),
    ("gen", {"gamma": math.inf}, "gen: --gamma must be a finite number > 0, got inf"),
    ("energy", {"temperature": 0}, "energy: --temperature must be a finite number > 0"),
    ("energy", {"temperature": math.inf}, "energy: --temperature must be a finite number > 0"),
    ("vim", {"dim": 0}, "vim: --dim must be >= 1, got 0"),
    ("gen", {"top_m": 0}, "gen: --top-m must be >= 1, got 0")])
def test_out_of_range_parameters_are_refused(name, params, message):
    with pytest.raises(UserError, match=message):
        detectors.make(name, **params)


@pytest.mark.parametrize("name, params, width, train, message", [
    ("knn", {"k": 60}, 8, 50, "knn: --k must be at most 50"),
    ("vim", {"dim": 8}, 8, 50, r"vim: --dim must be in 1..7 \(the feature width is 8\)"),
    ("ash", {"percentile": 99}, 8, None, "ash: --percentile 99 keeps 0 of 8 values")])
def test_parameters_that_do_not_fit_the_features_are_refused_before_any_pass(
        name, params, width, train, message):
    with pytest.raises(UserError, match=message):
        detectors.make(name, **params).check(width, train)
