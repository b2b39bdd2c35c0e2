"""Mahalanobis in full and FSSD on CIFAR networks (layerwise_runs.py): Lee et al.'s protocol on
per-layer scores chosen by hand, and what it refuses."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from oodbench.core.paths import UserError
from oodbench.detectors.mahalanobis_full import MahalanobisFull
from oodbench.networks.registry import FeatureLayer
from oodbench.pipelines import layerwise_runs as lw
from oodbench.scoring.features import LayerMaps

HELD, FIT = 40, 20


class HandScores:
    """A scorer whose per-layer scores (one layer) are chosen by hand: the in-distribution
    images score 1 + noise at every magnitude; a tested set's held-out images overlap them
    at magnitude 0 and score -1 at 0.5; TIN_val's the other way round. It records every
    request."""

    def __init__(self):
        self.spec = SimpleNamespace(in_dataset="CIFAR-10", image_size=32)
        self.asked = []

    def layer_scores(self, method, images, magnitudes):
        self.asked.append((images.name, images.indices, tuple(magnitudes)))
        n = len(images.indices)
        noise = np.random.RandomState(images.indices.start).uniform(0, 0.5, n)[:, None]
        out = {}
        for m in magnitudes:
            if images.name == "CIFAR-10":
                value = 1 + noise + 0.001 * np.arange(images.indices.start,
                                                      images.indices.stop)[:, None]
            elif images.name == lw.VALIDATION_SET:
                value = -1 - noise if m == 0 else 1 + noise
            else:
                value = 1 + noise if m == 0 else -1 - noise
            out[m] = value
        return out


@pytest.fixture
def small_protocol(monkeypatch):
    monkeypatch.setattr(lw, "VALIDATION", HELD)
    monkeypatch.setattr(lw, "FIT", FIT)
    monkeypatch.setitem(lw.DETECTORS, "mahalanobis_full", (MahalanobisFull, (0.0, 0.5)))


def ood_set(name, stop):
    return lw.Tested(name, lw.ImageRange(name, None, range(HELD, stop)),
                     lw.ImageRange(name, None, range(HELD)))


def test_lee_protocol_on_hand_chosen_scores(small_protocol):
    scorer = HandScores()
    rows = [lw.Row("mahalanobis_full", "ood"), lw.Row("mahalanobis_full", "tin")]
    sets = {"long": ood_set("long", 140), "short": ood_set("short", 100)}
    results = lw.evaluate(scorer, rows, sets, in_set=None)
    # the tested set's held-out images separate at 0.5, TIN_val's at 0: each row chooses so,
    # with a perfect TNR on the selection half
    for name in sets:
        assert results[name, rows[0]][2:] == (0.5, 1.0)
        assert results[name, rows[1]][2:] == (0.0, 1.0)
    # the held-out images: the first HELD of each set, the grid on each; the run's images
    # at the chosen magnitudes only; the in-distribution side once over the longest range
    assert ("CIFAR-10", range(HELD), (0.0, 0.5)) in scorer.asked
    assert ("TIN_val", range(HELD), (0.0, 0.5)) in scorer.asked
    assert ("long", range(HELD), (0.0, 0.5)) in scorer.asked
    assert ("CIFAR-10", range(HELD, 140), (0.0, 0.5)) in scorer.asked
    assert ("short", range(HELD, 100), (0.0, 0.5)) in scorer.asked
    assert not any(name == "CIFAR-10" and r == range(HELD, 100) for name, r, _ in scorer.asked)
    # P(in) of the run's images: sized per set, in-distribution high, OOD low where the
    # chosen magnitude separates them (0.5 for the tested set's own row)
    ins, outs, _, _ = results["short", rows[0]]
    assert len(ins) == len(outs) == 60
    assert ins.min() > 0.5 > outs.max()
    # TIN rows share one regression, so the shorter set's in-distribution P(in) are the
    # first ones of the longer set's: the in-distribution side is sliced, not re-scored
    assert np.array_equal(results["short", rows[1]][0], results["long", rows[1]][0][:60])


def test_rows_labels_and_tags():
    labels = [row.label for row in lw.ROWS]
    assert labels == ["Mahalanobis (full, OOD val)", "Mahalanobis (full, TIN val)",
                      "FSSD (OOD val)", "FSSD (TIN val)"]
    assert all(" " not in row.tag for row in lw.ROWS)
    assert len({row.tag for row in lw.ROWS}) == 4


def test_held_out_images_are_never_scored_as_a_run(installed):
    with pytest.raises(UserError, match="--skip must be at least 1000"):
        lw.tested_sets(None, ["iSUN"], 0, skip=500, max_images=None)


def test_layer_maps_stop_at_the_last_layer_asked_for():
    """LayerMaps runs the network only up to the last layer asked for (the hook stops it),
    and its outputs are those of the whole pass."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
    ran = []
    net[2].register_forward_hook(lambda *a: ran.append("last"))
    maps = LayerMaps(net, (FeatureLayer("first", "0", relu=True), FeatureLayer("second", "2")))
    x = torch.randn(2, 3, 8, 8)
    (first,) = maps.layer_maps(x, 1)
    assert ran == [] and torch.equal(first, torch.relu(net[0](x)))
    first, second = maps.layer_maps(x)
    assert ran == ["last"] and torch.equal(second, net(x))
