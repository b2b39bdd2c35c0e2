import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "code"))

GUARDED = ("runs", "results", "figures")   # the repository's own outputs


def snapshot():
    """(path, size, mtime) of every file under the repository's output folders."""
    return {(str(p), p.stat().st_size, p.stat().st_mtime_ns)
            for name in GUARDED for p in (ROOT / name).rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def repository_outputs_untouched():
    """Fails the session if any test read-wrote the repository's runs/, results/ or figures/."""
    before = snapshot()
    yield
    changed = sorted(before ^ snapshot())
    assert not changed, f"tests changed the repository's outputs: {changed[:5]}"


@pytest.fixture(autouse=True)
def private_outputs(tmp_path, monkeypatch):
    """Every test gets its own runs/ (and cache), results/ and figures/."""
    for name in GUARDED:
        monkeypatch.setenv(f"ODIN_{name.upper()}_DIR", str(tmp_path / "out" / name))
    return tmp_path / "out"


@pytest.fixture
def nothing_installed(tmp_path, monkeypatch):
    """An empty data/ and models/, an empty mirror and no downloads: every item is absent,
    whatever this machine happens to have installed."""
    for name in ("data", "models", "mirror"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("ODIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ODIN_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("ODIN_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("ODIN_OFFLINE", "1")
    return tmp_path


@pytest.fixture(scope="session")
def small_net():
    """A small CNN with set weights whose logits spread like a trained net's (softmax at T = 1
    between 0.4 and 0.96 on random images), so that ODIN's perturbation moves the scores
    far beyond the tests' tolerance (test_scoring.py shows the margin)."""
    import torch
    generator = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=2), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return net.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def installed():
    """The real data and weights. They come from ../shared (or $ODIN_MIRROR) via the setup
    step; when they cannot be had, tests that need them FAIL with the reason: never skip."""
    from oodbench.assets import rebuild
    from oodbench.assets.catalog import ITEMS_BY_NAME, Unavailable
    from oodbench.assets.fetch import ensure
    try:
        for name in ("cifar10", "iSUN", "densenet10", "mnist-images", "mnist-labels",
                     "tinyimagenet-test", "tinyimagenet-val", "fashion-mnist-images",
                     "fashion-mnist-labels", "fashion-mnist-images-train",
                     "fashion-mnist-labels-train"):
            ensure(ITEMS_BY_NAME[name], quiet=True)
        for name in rebuild.RECIPES:
            rebuild.build(name)
    except Unavailable as e:
        pytest.fail(f"real-data test needs data the setup could not provide: {e}")
    return True
