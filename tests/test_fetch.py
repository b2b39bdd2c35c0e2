"""Setup: checksums verified before use, corrupt files named, atomic and idempotent installs."""
import hashlib
import io
import tarfile

import pytest

import fetch
from paths import UserError


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
    source = fetch.Source("mirror", "set.tar.gz", "md5", md5, tmp_path / "data" / "set", "set")
    return fetch.Item("set", (source,))


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


def test_missing_everywhere_gives_url_and_checksum(mirror, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")
    monkeypatch.setattr(fetch.urllib.request, "urlopen", offline)
    with pytest.raises(fetch.Unavailable, match=r"LSUN is not available here: get it from "
                       r"https://www.dropbox.com/s/\S+/LSUN.tar.gz \(md5 458a0a0ab8e5f1cb4516d7400568e460\)"):
        fetch.ensure(fetch.ITEMS_BY_NAME["LSUN"], quiet=True)


def test_every_mirror_checksum_matches_shared_sha256sums():
    """The checksums in code agree with the mirror's own list, where both name a file."""
    sums = {}
    root = fetch.mirror_dir()
    assert root is not None, "../shared (or $ODIN_MIRROR) is needed by the test suite"
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    checked = 0
    for item in fetch.ITEMS:
        for s in item.sources:
            if s.where == "mirror" and s.algo == "sha256":
                assert sums[s.location] == s.digest, s.location
                checked += 1
    assert checked >= 10


def test_installed_file_that_went_corrupt_is_named(mirror, tmp_path):
    data = b"payload"
    (mirror / "f.bin").write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    item = fetch.Item("f", (fetch.Source("mirror", "f.bin", "md5", md5, tmp_path / "f.bin"),))
    installed = fetch.ensure(item, quiet=True)
    installed.write_bytes(data[:3])                       # truncated after installation
    with pytest.raises(UserError, match=rf"f.bin: corrupt or truncated .*expected {md5}"):
        fetch.ensure(item, quiet=True)
