"""Data flows one way: no module of code/ imports one from a layer above its own.

The layers (README, Layout): 0 ground, 1 assets, 2 data and models, 3 scoring and metrics,
4 runs and tuning, 5 reports, 6 entry points.
"""
import ast

import pytest

from paths import ROOT

LAYERS = {
    0: ("paths", "digests", "devices", "runtime", "scorefiles"),
    1: ("assets", "fetch", "rebuild"),
    2: ("datasets", "models", "densenet", "wideresnet", "cifar_resnet"),
    3: ("calData", "cache", "metrics"),
    4: ("runs", "tuning"),
    5: ("calMetric", "figures"),
    6: ("cli", "main", "tune", "table", "get_data", "convert_checkpoint"),
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}
CODE = ROOT / "code"


def project_imports(path):
    """The project modules that the file at ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(LAYER_OF)


def test_every_module_has_a_layer():
    assert sorted(p.stem for p in CODE.glob("*.py")) == sorted(LAYER_OF)


@pytest.mark.parametrize("module", sorted(LAYER_OF))
def test_no_module_imports_from_above(module):
    above = {name: LAYER_OF[name] for name in project_imports(CODE / f"{module}.py")
             if LAYER_OF[name] > LAYER_OF[module]}
    assert not above, f"{module} (layer {LAYER_OF[module]}) imports {above}"


def test_no_sys_path_tricks_in_code():
    for path in CODE.glob("*.py"):
        text = path.read_text()
        assert "sys.path" not in text and "noqa: E402" not in text, path.name
