"""Data flows one way: no module of code/ imports one from a layer above its own.

The layers (README, Layout): 0 ground, 1 assets, 2 data and models, 3 scoring and metrics,
4 runs and tuning, 5 reports, 6 entry points.
"""
import ast

import pytest

from paths import ROOT

LAYERS = {
    0: ("paths", "digests", "devices", "runtime", "shards", "scorefiles"),
    1: ("assets", "fetch", "rebuild"),
    2: ("datasets", "models", "densenet", "wideresnet", "cifar_resnet", "lenet", "greysets"),
    3: ("calData", "cache", "metrics", "features", "detectors"),
    4: ("runs", "tuning", "feature_runs", "fssd_bench", "layerwise_runs", "laood_runs"),
    5: ("calMetric", "figures", "fssd_report", "laood_report"),
    6: ("cli", "main", "tune", "table", "compare", "get_data", "convert_checkpoint", "train",
        "fssd_table", "laood_table"),
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


PACKAGES = ("detectors",)   # a package's modules all sit in the package's layer


def module_files():
    """{module name: its file}: code/*.py, and the modules of each package as package.name."""
    files = {p.stem: p for p in CODE.glob("*.py")}
    for package in PACKAGES:
        files.update({f"{package}.{p.stem}": p for p in (CODE / package).glob("*.py")})
    return files


def layer_of(module):
    return LAYER_OF[module.split(".")[0]]


def test_every_module_has_a_layer():
    top = {name.split(".")[0] for name in module_files()}
    assert sorted(top) == sorted(LAYER_OF)


@pytest.mark.parametrize("module", sorted(module_files()))
def test_no_module_imports_from_above(module):
    above = {name: LAYER_OF[name] for name in project_imports(module_files()[module])
             if LAYER_OF[name] > layer_of(module)}
    assert not above, f"{module} (layer {layer_of(module)}) imports {above}"


def test_no_sys_path_tricks_in_code():
    for path in module_files().values():
        text = path.read_text()
        assert "sys.path" not in text and "noqa: E402" not in text, path.name
