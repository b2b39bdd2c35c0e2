"""Data flows one way: no module of the oodbench package imports one from a layer above its
own, every module says its layer, and the entry points at code/ stay thin.

The layers are the package's subpackages; the map is ``oodbench.LAYERS`` and the table in
``oodbench/__init__.py``'s docstring (0 core, 1 assets, 2 networks and datasets, 3 scoring
and detectors, 4 pipelines, 5 reports, 6 commands; code/*.py, the entry points, sit above).
"""
import ast
import re

import pytest

import oodbench
from oodbench.core.paths import ROOT

CODE = ROOT / "code"
PACKAGE = CODE / "oodbench"
ENTRY_LAYER = 7   # code/*.py: above every layer of the package


def module_files():
    """{dotted module name: its file} for every module of the package and every entry point."""
    files = {".".join(("oodbench", *p.relative_to(PACKAGE).with_suffix("").parts)): p
             for p in PACKAGE.rglob("*.py")}
    files.update({p.stem: p for p in CODE.glob("*.py")})
    return files


def subpackage_of(module):
    """The subpackage of a dotted name (``oodbench.scoring.cache`` -> scoring), None for the
    package itself and the entry points."""
    parts = module.split(".")
    return parts[1] if parts[0] == "oodbench" and len(parts) > 1 \
        and parts[1] != "__init__" else None


def layer_of(module):
    if module.split(".")[0] != "oodbench":
        return ENTRY_LAYER
    sub = subpackage_of(module)
    return oodbench.LAYERS[sub] if sub else 0   # oodbench/__init__.py: the map only


def project_imports(path):
    """The oodbench names that the file at ``path`` imports, anywhere in it, dotted in full
    (``from oodbench.pipelines import runs`` gives ``oodbench.pipelines.runs``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("oodbench.")}


def test_the_map_lists_every_subpackage():
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}   # api
    assert folders | modules == set(oodbench.LAYERS)
    table = {name: int(layer) for layer, name in
             re.findall(r"^(\d)\s+(\w+)\s", oodbench.__doc__, re.M)}
    assert table == oodbench.LAYERS


def test_every_module_sits_in_a_layer():
    for module in module_files():
        if module.startswith("oodbench.") and module != "oodbench.__init__":
            assert subpackage_of(module) in oodbench.LAYERS, module


@pytest.mark.parametrize("module", sorted(module_files()))
def test_no_module_imports_from_above(module):
    above = {name: layer_of(name) for name in project_imports(module_files()[module])
             if layer_of(name) > layer_of(module)}
    assert not above, f"{module} (layer {layer_of(module)}) imports {above}"


@pytest.mark.parametrize("module", sorted(m for m in module_files() if m.startswith("oodbench.")
                                          and not m.endswith("__init__")))
def test_every_module_says_its_layer_first(module):
    """The first line of each module's docstring says its job and its layer."""
    doc = ast.get_docstring(ast.parse(module_files()[module].read_text()))
    assert doc, f"{module} has no docstring"
    first = doc.split("\n")[0]
    assert f"layer {layer_of(module)}" in first, f"{module}: first line {first!r}"


@pytest.mark.parametrize("entry", sorted(p.name for p in CODE.glob("*.py")))
def test_entry_points_are_thin(entry):
    """code/<name>.py: a docstring and a main() imported from oodbench.commands (calData.py:
    the release's name for ODIN's scoring)."""
    path = CODE / entry
    tree = ast.parse(path.read_text())
    code_lines = [n for n in tree.body if not (isinstance(n, ast.Expr)
                                               and isinstance(n.value, ast.Constant))]
    assert all(isinstance(n, (ast.Import, ast.ImportFrom, ast.If)) for n in code_lines), entry
    wanted = "oodbench.scoring" if entry == "calData.py" else "oodbench.commands"
    assert any(m.startswith(wanted) for m in project_imports(path)), entry
    assert len(path.read_text().splitlines()) <= 15, entry


def test_no_sys_path_tricks_in_code():
    for path in module_files().values():
        text = path.read_text()
        assert "sys.path" not in text and "noqa: E402" not in text, path


def test_the_release_names_work_from_code(capsys, monkeypatch):
    """python main.py from code/ (a real process), and calMetric.py and import calData there,
    as in the release."""
    import runpy
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "main.py", "--help"], cwd=CODE, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--out_dataset" in done.stdout, done.stderr
    monkeypatch.setattr(sys, "argv", ["calMetric.py", "--help"])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(CODE / "calMetric.py"), run_name="__main__")
    assert stopped.value.code == 0 and "--metrics" in capsys.readouterr().out
    import calData
    from oodbench.scoring import odin_scoring
    assert calData.odin_batch is odin_scoring.odin_batch


def test_the_package_imports_from_anywhere(tmp_path):
    """After the setup's pip install -e ., a notebook anywhere imports the package."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import oodbench; print(oodbench.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stderr} (run bash scripts/setup_env.sh)"
    assert done.stdout.strip() == str(PACKAGE / "__init__.py")
