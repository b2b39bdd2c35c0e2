import sys
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parent.parent / "code"
sys.path.insert(0, str(CODE))


@pytest.fixture(scope="session")
def installed():
    """The real data and weights. They come from ../shared (or $ODIN_MIRROR) via the setup
    step; when they cannot be had, tests that need them FAIL with the reason: never skip."""
    import fetch
    for name in ("cifar10", "iSUN", "densenet10", "mnist-images", "tinyimagenet-test"):
        try:
            fetch.ensure(fetch.ITEMS_BY_NAME[name], quiet=True)
        except fetch.Unavailable as e:
            pytest.fail(f"real-data test needs {name}, which the setup could not provide: {e}")
    return True
