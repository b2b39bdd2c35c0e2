"""Setup: checksums verified before use, corrupt files named, atomic and idempotent installs."""
import hashlib
import io
import tarfile

import pytest

import subprocess
import sys

from oodbench.assets import catalog, fetch
from oodbench.commands import get_data
from oodbench.core.paths import ROOT, UserError, mirror_dir


def make_tar(path, folder, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    root = tmp_path / "mirror"
    root.mkdir()
    monkeypatch.setenv("ODIN_MIRROR", str(root))
    return root


def item_for(mirror, tmp_path, md5):
    source = catalog.Source("mirror", "set.tar.gz", "md5", md5, tmp_path / "data" / "set", "set")
    return catalog.Item("set", (source,))


def test_install_verifies_extracts_and_is_idempotent(mirror, tmp_path):
    md5 = make_tar(mirror / "set.tar.gz", "set", {"a/0.txt": b"zero", "a/1.txt": b"one"})
    item = item_for(mirror, tmp_path, md5)
    dest = fetch.ensure(item, quiet=True)
    assert (dest / "a" / "1.txt").read_bytes() == b"one" and (dest / fetch.STAMP).exists()
    (mirror / "set.tar.gz").unlink()           # installed: the source is not needed again
    assert fetch.ensure(item, quiet=True) == dest
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_corrupt_archive_is_refused_by_name_and_checksum(mirror, tmp_path):
    md5 = make_tar(mirror / "set.tar.gz", "set", {"0.txt": b"zero"})
    data = (mirror / "set.tar.gz").read_bytes()
    (mirror / "set.tar.gz").write_bytes(data[: len(data) // 2])   # truncated
    with pytest.raises(UserError, match=rf"set.tar.gz: corrupt or truncated .*expected {md5}"):
        fetch.ensure(item_for(mirror, tmp_path, md5), quiet=True)
    assert not (tmp_path / "data" / "set").exists()


def test_missing_everywhere_gives_url_and_checksum(nothing_installed, monkeypatch):
    monkeypatch.delenv("ODIN_OFFLINE")

    def no_network(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_network)
    with pytest.raises(catalog.Unavailable, match=r"LSUN is not available here: get it from "
                       r"https://www.dropbox.com/s/\S+/LSUN.tar.gz "
                       r"\(md5 458a0a0ab8e5f1cb4516d7400568e460\).*no network"):
        fetch.ensure(catalog.ITEMS_BY_NAME["LSUN"], quiet=True)


def test_setup_with_nothing_to_be_had_says_so_one_line_an_item(nothing_installed):
    """An empty mirror and no network: every item and every rebuilt set is one line of
    'unavailable', exit status 0; an item asked for by name: exit status 1. No traceback."""
    env = {"ODIN_DATA_DIR": str(nothing_installed / "data"), "PATH": "",
           "ODIN_MODELS_DIR": str(nothing_installed / "models"),
           "ODIN_MIRROR": str(nothing_installed / "mirror"), "ODIN_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "code" / "get_data.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()[1:]]
    assert len(lines) == len(catalog.ITEMS) + len(catalog.REBUILT)
    # only Debian's Fashion-MNIST, a system path, can still be installed
    assert all(line.startswith("unavailable: ") or "(from system" in line for line in lines)
    assert any(line.startswith("unavailable: TIN_crop is not built: tinyimagenet-test is not "
                               "available here") for line in lines)
    assert any(line.startswith("unavailable: CIFAR10_grey is not built: cifar10 is not "
                               "available here") for line in lines)
    done = subprocess.run([sys.executable, str(ROOT / "code" / "get_data.py"), "iSUN"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "unavailable: iSUN is not available here" in done.stdout


def test_setup_stops_on_a_corrupt_file(mirror, tmp_path, monkeypatch, capsys):
    md5 = make_tar(mirror / "set.tar.gz", "set", {"0.txt": b"zero"})
    (mirror / "set.tar.gz").write_bytes(b"junk")
    monkeypatch.setattr(get_data, "ITEMS", [item_for(mirror, tmp_path, md5)])
    assert get_data.main(["--no-rebuild"]) == 1
    assert "corrupt or truncated" in capsys.readouterr().err


def test_every_mirror_checksum_matches_shared_sha256sums():
    """The checksums in code agree with the mirror's own list, where both name a file."""
    sums = {}
    root = mirror_dir()
    assert root is not None, "../shared (or $ODIN_MIRROR) is needed by the test suite"
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    checked = 0
    for item in catalog.ITEMS:
        for s in item.sources:
            if s.where == "mirror" and s.algo == "sha256":
                assert sums[s.location] == s.digest, s.location
                checked += 1
    assert checked >= 10


def test_installed_file_that_went_corrupt_is_named(mirror, tmp_path):
    data = b"payload"
    (mirror / "f.bin").write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    item = catalog.Item("f", (catalog.Source("mirror", "f.bin", "md5", md5, tmp_path / "f.bin"),))
    installed = fetch.ensure(item, quiet=True)
    installed.write_bytes(data[:3])                       # truncated after installation
    with pytest.raises(UserError, match=rf"f.bin: corrupt or truncated .*expected {md5}"):
        fetch.ensure(item, quiet=True)


def test_every_model_is_an_asset_and_every_url_is_in_the_catalogue_only():
    from oodbench.networks import registry
    assert all(name in catalog.ITEMS_BY_NAME for name in registry.MODELS)
    catalogue = ROOT / "code" / "oodbench" / "assets" / "catalog.py"
    assert "dropbox" in catalogue.read_text().lower()
    for module in (ROOT / "code").rglob("*.py"):
        if module != catalogue:
            assert "dropbox" not in module.read_text().lower(), module


def test_a_source_without_a_published_checksum_is_never_downloaded(
        nothing_installed, monkeypatch):
    monkeypatch.delenv("ODIN_OFFLINE")
    monkeypatch.setattr(fetch.urllib.request, "urlopen",
                        lambda *a, **k: pytest.fail("downloaded an unverifiable file"))
    with pytest.raises(catalog.Unavailable, match="wideresnet10 is not available here: .*no "
                       "published checksum.*never downloaded"):
        fetch.ensure(catalog.ITEMS_BY_NAME["wideresnet10"], quiet=True)
