"""Set up data/ and models/: copy from a mirror or download, verify, install atomically.

Every item has one or more candidate sources, tried in order: a file in the
local mirror ($ODIN_MIRROR, default ../shared), a system path (Debian's
Fashion-MNIST package), then the original URL. Each source is verified
(md5 or sha256) before anything is extracted; installation goes through a
temporary folder renamed into place, and a stamp file makes re-runs no-ops.

    python code/fetch.py                 # everything that can be had
    python code/fetch.py cifar10 iSUN    # just these
"""
import argparse
import gzip
import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from paths import DATA_DIR, MODELS_DIR, ROOT, UserError, mirror_dir

STAMP = ".complete"


@dataclass(frozen=True)
class Source:
    """One place an item can come from. ``where`` is 'mirror', 'system' or 'url'."""
    where: str
    location: str            # path relative to the mirror, absolute path, or URL
    algo: str                # 'md5' or 'sha256'
    digest: str
    dest: Path               # the file or folder it installs
    member: str = ""         # a tar archive: the top folder (or file) to keep; "" = copy as is
    gunzipped: bool = False  # checksum is of the gunzipped content (re-compressed copies)


@dataclass(frozen=True)
class Item:
    name: str
    sources: tuple           # tried in order

    @property
    def dest(self):
        return self.sources[0].dest


DROPBOX = "https://www.dropbox.com/s/"
AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def mirror(path, algo, digest, dest, member=""):
    return Source("mirror", path, algo, digest, dest, member)


def url(address, algo, digest, dest, member=""):
    return Source("url", address, algo, digest, dest, member)


def _release_set(name, key, md5):
    """An OOD set of the ODIN release: a tar.gz holding the folder ``name``."""
    return Item(name, (url(f"{DROPBOX}{key}/{name}.tar.gz", "md5", md5, DATA_DIR / name, name),))


def _idx(family, mirror_path, base_url, part, dim, md5, gunzipped=False):
    filename = f"t10k-{part}-idx{dim}-ubyte.gz"
    dest = DATA_DIR / family / filename
    sources = [url(base_url + filename, "md5", md5, dest)]
    if mirror_path:
        sources.insert(0, mirror(f"{mirror_path}/{filename}", "md5", md5, dest))
    if gunzipped:  # Debian re-compressed Fashion-MNIST: its checksum is of the gunzipped bytes
        sources.insert(0, Source("system", f"/usr/share/datasets/fashion-mnist/{filename}",
                                 "md5", md5, dest))
        sources = [Source(s.where, s.location, s.algo, s.digest, s.dest, gunzipped=True)
                   for s in sources]
    return Item(f"{family}-{part}", tuple(sources))


def _model_file(name, mirror_path, sha256, address=None):
    dest = MODELS_DIR / name
    sources = [mirror(mirror_path, "sha256", sha256, dest)]
    if address:
        sources.append(url(address, "sha256", sha256, dest))
    return Item(Path(name).name.split(".")[0], tuple(sources))


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
ITEMS = [
    # CIFAR-10: the mirror's lossless npz, else the official archive.
    Item("cifar10", (
        mirror("data/cifar10/cifar10_test.npz", "sha256",
               "f0af87a8a9f49a2afa5273786cb6887e59c1d2469a75111296c8135b01d9b8ed",
               DATA_DIR / "cifar10" / "cifar10_test.npz"),
        url(CIFAR_URL + "cifar-10-python.tar.gz", "md5", "c58f30108f718f92721af3b95e74349a",
            DATA_DIR / "cifar-10-batches-py", "cifar-10-batches-py"),
    )),
    Item("cifar100", (
        url(CIFAR_URL + "cifar-100-python.tar.gz", "md5", "eb9058c3a382ffc7106e4002c42a8d85",
            DATA_DIR / "cifar-100-python", "cifar-100-python"),
    )),
    Item("iSUN", (
        mirror("data/ood/iSUN.tar.gz", "md5", "be77b0f2c26fda898afac5f99645ee70",
               DATA_DIR / "iSUN", "iSUN"),
        url(DROPBOX + "ssz7qxfqae0cca5/iSUN.tar.gz", "md5", "be77b0f2c26fda898afac5f99645ee70",
            DATA_DIR / "iSUN", "iSUN"),
    )),
    _release_set("Imagenet", "avgm2u562itwpkl", "7c0827e4246c3718a5ee076e999e52e5"),
    _release_set("Imagenet_resize", "kp3my3412u5k9rl", "0f9ff11d45babf2eff5fe12281d1ac31"),
    _release_set("LSUN", "fhtsw1m3qxlwj6h", "458a0a0ab8e5f1cb4516d7400568e460"),
    _release_set("LSUN_resize", "moqh2wh8696c3yl", "278b7b31c8cb7e804a1465a8ce03a2dc"),
    # Tiny-ImageNet test / val splits (the sources of the rebuilt TIN sets); the
    # official zip holds both, but only the mirror's verified split archives are used.
    *[Item(f"tinyimagenet-{split}", (
        mirror(f"data/tinyimagenet/tiny-imagenet-200-{split}.tar.gz", "sha256", sha,
               DATA_DIR / f"tiny-imagenet-200-{split}", "tiny-imagenet-200"),
    )) for split, sha in [
        ("test", "941b53bf84bdf9a9b81b75bd294ad79650eddc8a04f16d213432e41ba9355d12"),
        ("val", "67a5104da0846933e620e353aad3ea69773cc661d5aac2ba324e75f5dfe7db2e")]],
    _idx("mnist", "data/mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
         "images", 3, "9fb629c4189551a2d022fa330f9573f3"),
    _idx("mnist", "data/mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
         "labels", 1, "ec29112dd5afa0611ce80d1b7f02629c"),
    _idx("fashion-mnist", None, FASHION, "images", 3, "8181f5470baa50b63fa0f6fddb340f0a", True),
    _idx("fashion-mnist", None, FASHION, "labels", 1, "15d484375f8d13e6eb1aabb0c3f46965", True),
    # The ODIN release models (tar.gz of a pickle; models.py checks the pickle's sha256 again).
    Item("densenet10", (
        mirror("models/odin/densenet10.pth.tar.gz", "sha256",
               "b5dcb42b3bc725deb4aaeb574255ead1380ecbea3e3720d8b9e17181a82f353d",
               MODELS_DIR / "densenet10.pth", "densenet10.pth"),
        url(DROPBOX + "wr4kjintq1tmorr/densenet10.pth.tar.gz", "sha256",
            "b5dcb42b3bc725deb4aaeb574255ead1380ecbea3e3720d8b9e17181a82f353d",
            MODELS_DIR / "densenet10.pth", "densenet10.pth"),
    )),
    _model_file("dice_densenet10.pth.tar", "models/dice/densenet_cifar10_checkpoint_100.pth.tar",
                "deaefd082911a1c6c92aacdcfecf03c71b932acc5c08b779c85c44eccdc0c817"),
    _model_file("dice_densenet100.pth.tar", "models/dice/densenet_cifar100_checkpoint_100.pth.tar",
                "56cbe261c2612976e11aedcbd60ba00766e8c01c78f96c3f18ff561ead804d47"),
    _model_file("necas_densenet10.pth.tar", "models/necas/densenet_bc100_cifar10_model_best.pth.tar",
                "83350f14c6b01406e7b44666acd80fd63f0a0cf132cf43573932fd86c7a6aace"),
    *[_model_file(f"resnet{depth}.th", f"models/akamaster/resnet{depth}-{sha[:8]}.th", sha,
                  f"{AKAMASTER}resnet{depth}-{sha[:8]}.th") for depth, sha in [
        (20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"),
        (32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850"),
        (44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4"),
        (56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367")]],
    _model_file("resnet56_cifar100.pt", "models/chenyaofo/cifar100_resnet56-f2eff4c8.pt",
                "f2eff4c8461ca1e0d39af83a65f7243bf7d29ec421efee3064bcee93a3caaa73",
                "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/"
                "cifar100_resnet56-f2eff4c8.pt"),
]
ITEMS_BY_NAME = {item.name: item for item in ITEMS}


class Unavailable(Exception):
    """No source of an item could be reached (no mirror copy, no network)."""


def file_digest(path, algo, gunzipped=False):
    h = hashlib.new(algo)
    opener = gzip.open if gunzipped else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def installed_path(item):
    """The installed file or folder of ``item``, or None. A folder counts once stamped."""
    for source in item.sources:
        if source.dest.is_file() or (source.dest / STAMP).is_file():
            return source.dest
    return None


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
        if done.is_file() and not source.member:
            verify(done, source)
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
                print(f"  {item.name}: installed {source.dest.relative_to(ROOT)} "
                      f"(from {source.where}, {source.algo} verified)")
            return source.dest
    raise Unavailable(unavailable_message(item, "; ".join(reasons)))


def unavailable_message(item, why=""):
    urls = [s for s in item.sources if s.where == "url"]
    where = " or ".join(f"{s.location} ({s.algo} {s.digest})" for s in urls) or "the mirror"
    reason = f" [{why}]" if why else ""
    return f"{item.name} is not available here: get it from {where} into " \
           f"{item.dest.relative_to(ROOT)}{reason}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", metavar="ITEM",
                        help="items to set up (default: all); one of " + ", ".join(ITEMS_BY_NAME))
    parser.add_argument("--no-rebuild", action="store_true",
                        help="do not build the derived sets (TIN_crop, TIN_resize)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.items if n not in ITEMS_BY_NAME]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS_BY_NAME)}")
    print(f"Setting up data/ and models/ (mirror: {mirror_dir() or 'none'})")
    missing = []
    for item in [ITEMS_BY_NAME[n] for n in args.items] or ITEMS:
        try:
            ensure(item)
        except Unavailable as e:
            missing.append(str(e))
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    if not args.no_rebuild and not args.items:
        import rebuild
        rebuild.build_all()
    for line in missing:
        print(f"  unavailable: {line}")
    # Explicitly requested items must all succeed; the default run reports what is missing.
    return 1 if (missing and args.items) else 0


if __name__ == "__main__":
    sys.exit(main())
