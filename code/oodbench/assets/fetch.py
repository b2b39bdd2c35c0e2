"""Install catalogue items: copy from the mirror or download, verify, install atomically (layer 1).

Each source of an item (the catalogue, catalog.py) is tried in order; a source's bytes are
verified (md5 or sha256) before anything is extracted; installation goes
through a temporary folder renamed into place, and a stamp file makes re-runs
no-ops. ODIN_OFFLINE=1 skips the URL sources (no network is tried); a source with no
published checksum is listed for the user, never downloaded.
The command is ``code/get_data.py`` (``bash scripts/get_data.sh``).
"""
import gzip
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from oodbench.assets.catalog import STAMP, Unavailable, installed_path, unavailable_message
from oodbench.core.digests import file_digest
from oodbench.core.paths import UserError, mirror_dir, shown


def verify(path, source):
    """Raise UserError unless ``path`` has the source's checksum."""
    try:
        got = file_digest(path, source.algo, source.gunzipped)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"{path}: unreadable or truncated ({e}); expected {source.algo} "
                        f"{source.digest}") from None
    if got != source.digest:
        what = "gunzipped content " if source.gunzipped else ""
        raise UserError(f"{path}: corrupt or truncated ({what}{source.algo} {got}, expected "
                        f"{source.digest}); delete or replace it and run the setup again")


def offline():
    return os.environ.get("ODIN_OFFLINE", "") not in ("", "0")


def _obtain(source, workdir):
    """Return a local path holding the source's bytes, or raise Unavailable."""
    if source.where == "mirror":
        root = mirror_dir()
        path = root / source.location if root else None
        if path is None or not path.exists():
            raise Unavailable(f"not in the mirror ({root or 'none'})")
        return path
    if source.where == "system":
        path = Path(source.location)
        if not path.exists():
            raise Unavailable(f"{path} absent")
        return path
    if not source.algo:
        raise Unavailable("no published checksum, so it is never downloaded here: fetch it "
                          "yourself and, if you trust it, python code/convert_checkpoint.py it")
    if offline():
        raise Unavailable("ODIN_OFFLINE is set: no download tried")
    target = Path(workdir) / source.location.rsplit("/", 1)[-1]
    try:
        with urllib.request.urlopen(source.location, timeout=30) as r, open(target, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as e:
        raise Unavailable(f"download of {source.location} failed ({e})") from None
    return target


def _install(item, source, path):
    """Copy or extract a verified file into place through a temporary name."""
    dest = source.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{item.name}-"))
    try:
        if not source.member:
            built = staging / dest.name
            shutil.copyfile(path, built)
        else:
            with tarfile.open(path) as tar:
                tar.extractall(staging, filter="data")
            built = staging / source.member
            if not built.exists():
                raise UserError(f"{path}: the archive holds no {source.member!r}")
            if built.is_dir():
                (built / STAMP).write_text(f"{source.algo} {source.digest}\n")
        if dest.is_dir():
            shutil.rmtree(dest)  # an unstamped (incomplete or hand-made) folder
        built.replace(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure(item, quiet=False):
    """Install ``item`` unless it already is; raise Unavailable if no source works.

    An installed single file is verified again (a folder was verified as its archive)."""
    done = installed_path(item)
    if done:
        source = next(s for s in item.sources if s.dest == done)
        if done.is_file() and not source.member and source.algo:
            verify(done, source)          # a file the user put there has no checksum to check
        return done
    reasons = []
    with tempfile.TemporaryDirectory() as workdir:
        for source in item.sources:
            try:
                path = _obtain(source, workdir)
            except Unavailable as e:
                reasons.append(f"{source.where}: {e}")
                continue
            verify(path, source)
            _install(item, source, path)
            if not quiet:
                print(f"  {item.name}: installed {shown(source.dest)} "
                      f"(from {source.where}, {source.algo} verified)")
            return source.dest
    raise Unavailable(unavailable_message(item, "; ".join(reasons)))
