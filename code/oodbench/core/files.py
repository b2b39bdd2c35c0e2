"""Writing a file whole or not at all (layer 0: core).

Every file the project writes (score files, run.json, cache entries, tables, figures,
checkpoints) goes through ``replacing``: the content is written to a temporary file with a
name of its own in the destination folder, then renamed over the destination in one step.
A reader never sees half a file, a write stopped half-way leaves nothing behind, and two
processes writing the same file at once each rename a complete file of their own (the last
one stays) instead of writing into one shared temporary name.
"""
import contextlib
import os
import tempfile
from pathlib import Path

from oodbench.core.paths import UserError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def check_writable(folder, what="folder"):
    """A UserError now, before any work, unless files can be created in ``folder`` (or, where
    it does not exist yet, in its nearest existing parent, which is tried with a temporary
    file of its own: nothing is created, and two commands checking at once never collide)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: choose another {what}")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create the {what} {folder}: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UserError(f"cannot create the {what} {folder}: {e.strerror}") from None
    return folder


@contextlib.contextmanager
def replacing(path):
    """Yield a fresh temporary path beside ``path`` (same suffix, so that writers that go by
    the suffix, such as numpy's savez and matplotlib's savefig, keep their format); when the
    block ends normally it becomes ``path``, otherwise it is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                        suffix=f".tmp{path.suffix}")
    except OSError as e:        # a folder made read-only, a full disk: one line, not a traceback
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    os.close(handle)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)     # mkstemp's 0600 would make results private
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text):
    """``text`` into ``path``, whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def writing(path, mode="w", **kwargs):
    """A file opened for writing whose content becomes ``path`` when the block ends normally."""
    with replacing(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_lines(path, lines):
    """The strings ``lines`` into ``path``, whole or not at all."""
    with writing(path, newline="") as f:
        f.writelines(lines)


def save_torch(obj, path):
    """``torch.save(obj)`` into ``path``, whole or not at all, with the same bytes whatever the
    temporary file is called: torch names the archive inside after the file it writes, so the
    temporary file (in a folder of its own beside ``path``) is ``<name>.tmp``, which torch
    names ``<name>``, the archive name a plain save of ``<name>.tmp`` has always given."""
    import torch
    path = Path(path)
    with replacing(path) as tmp:
        folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}."))
        try:
            staged = folder / f"{path.name}.tmp"
            torch.save(obj, staged)
            os.replace(staged, tmp)
        finally:
            for leftover in folder.iterdir():
                leftover.unlink()
            folder.rmdir()
