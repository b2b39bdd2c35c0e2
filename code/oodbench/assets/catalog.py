"""What the project installs, from where, with which checksum, and where it lands (layer 1).

The one catalogue of external files: datasets and pre-trained weights, each an
``Item`` with candidate ``Source``s tried in order (the local mirror, a system
path, the original URL), and the sets rebuilt from them at setup (``REBUILT``).
Layers above ask here where an installed item is, and get the message a user
needs when it is not; ``fetch`` installs, ``rebuild`` builds.
"""
from dataclasses import dataclass
from pathlib import Path

from oodbench.core.paths import UserError, data_dir, models_dir, shown

STAMP = ".complete"  # written last into an installed or built folder


class Unavailable(UserError):
    """An item that is not installed and that no source could provide."""


@dataclass(frozen=True)
class Source:
    """One place an item can come from. ``where`` is 'mirror', 'system' or 'url'."""
    where: str
    location: str            # path relative to the mirror, absolute path, or URL
    algo: str                # 'md5' or 'sha256'; "" where no checksum was ever published
    digest: str
    path: str                # where it installs, relative to data/ (or models/, see root)
    member: str = ""         # a tar archive: the top folder (or file) to keep; "" = copy as is
    gunzipped: bool = False  # checksum is of the gunzipped content (re-compressed copies)
    root: str = "data"       # 'data' or 'models'

    @property
    def dest(self):
        return (models_dir() if self.root == "models" else data_dir()) / self.path


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
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"


def mirror(path, algo, digest, dest, member="", root="data"):
    return Source("mirror", path, algo, digest, dest, member, root=root)


def url(address, algo, digest, dest, member="", root="data"):
    return Source("url", address, algo, digest, dest, member, root=root)


def _release_set(name, key, md5):
    """An OOD set of the ODIN release: a tar.gz holding the folder ``name``."""
    return Item(name, (url(f"{DROPBOX}{key}/{name}.tar.gz", "md5", md5, name, name),))


def _release_model(name, key, sha256=""):
    """A model of the ODIN release: a tar.gz holding ``<name>.pth`` (a full pickle)."""
    sources = (url(f"{DROPBOX}{key}/{name}.pth.tar.gz", "sha256" if sha256 else "", sha256,
                   f"{name}.pth", f"{name}.pth", root="models"),)
    if sha256:
        sources = (mirror(f"models/odin/{name}.pth.tar.gz", "sha256", sha256, f"{name}.pth",
                          f"{name}.pth", root="models"),) + sources
    return Item(name, sources)


def _idx(family, mirror_path, base_url, part, dim, md5, gunzipped=False, split="t10k"):
    filename = f"{split}-{part}-idx{dim}-ubyte.gz"
    dest = f"{family}/{filename}"
    sources = [url(base_url + filename, "md5", md5, dest)]
    if mirror_path:
        sources.insert(0, mirror(f"{mirror_path}/{filename}", "md5", md5, dest))
    if gunzipped:  # Debian re-compressed Fashion-MNIST: its checksum is of the gunzipped bytes
        sources.insert(0, Source("system", f"/usr/share/datasets/fashion-mnist/{filename}",
                                 "md5", md5, dest))
        sources = [Source(s.where, s.location, s.algo, s.digest, s.path, gunzipped=True)
                   for s in sources]
    suffix = "-train" if split == "train" else ""
    return Item(f"{family}-{part}{suffix}", tuple(sources))


def _model_file(name, mirror_path, sha256, address=None):
    sources = [mirror(mirror_path, "sha256", sha256, name, root="models")]
    if address:
        sources.append(url(address, "sha256", sha256, name, root="models"))
    return Item(Path(name).name.split(".")[0], tuple(sources))


ITEMS = [
    # CIFAR-10: the mirror's lossless npz, else the official archive.
    Item("cifar10", (
        mirror("data/cifar10/cifar10_test.npz", "sha256",
               "f0af87a8a9f49a2afa5273786cb6887e59c1d2469a75111296c8135b01d9b8ed",
               "cifar10/cifar10_test.npz"),
        url(CIFAR_URL + "cifar-10-python.tar.gz", "md5", "c58f30108f718f92721af3b95e74349a",
            "cifar-10-batches-py", "cifar-10-batches-py"),
    )),
    # Its training set (the fitted detectors' statistics): the mirror's npz, else the same
    # official archive, which holds both splits.
    Item("cifar10-train", (
        mirror("data/cifar10/cifar10_train.npz", "sha256",
               "69e4a92aabedb1dd3e0c84e581b8e86f50c560d7b97db2336c20291463ce9183",
               "cifar10/cifar10_train.npz"),
        url(CIFAR_URL + "cifar-10-python.tar.gz", "md5", "c58f30108f718f92721af3b95e74349a",
            "cifar-10-batches-py", "cifar-10-batches-py"),
    )),
    Item("cifar100", (
        url(CIFAR_URL + "cifar-100-python.tar.gz", "md5", "eb9058c3a382ffc7106e4002c42a8d85",
            "cifar-100-python", "cifar-100-python"),
    )),
    Item("iSUN", (
        mirror("data/ood/iSUN.tar.gz", "md5", "be77b0f2c26fda898afac5f99645ee70", "iSUN", "iSUN"),
        url(DROPBOX + "ssz7qxfqae0cca5/iSUN.tar.gz", "md5", "be77b0f2c26fda898afac5f99645ee70",
            "iSUN", "iSUN"),
    )),
    _release_set("Imagenet", "avgm2u562itwpkl", "7c0827e4246c3718a5ee076e999e52e5"),
    _release_set("Imagenet_resize", "kp3my3412u5k9rl", "0f9ff11d45babf2eff5fe12281d1ac31"),
    _release_set("LSUN", "fhtsw1m3qxlwj6h", "458a0a0ab8e5f1cb4516d7400568e460"),
    _release_set("LSUN_resize", "moqh2wh8696c3yl", "278b7b31c8cb7e804a1465a8ce03a2dc"),
    # Tiny-ImageNet test / val splits (the sources of the rebuilt TIN sets); the
    # official zip holds both, but only the mirror's verified split archives are used.
    *[Item(f"tinyimagenet-{split}", (
        mirror(f"data/tinyimagenet/tiny-imagenet-200-{split}.tar.gz", "sha256", sha,
               f"tiny-imagenet-200-{split}", "tiny-imagenet-200"),
    )) for split, sha in [
        ("test", "941b53bf84bdf9a9b81b75bd294ad79650eddc8a04f16d213432e41ba9355d12"),
        ("val", "67a5104da0846933e620e353aad3ea69773cc661d5aac2ba324e75f5dfe7db2e")]],
    _idx("mnist", "data/mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
         "images", 3, "9fb629c4189551a2d022fa330f9573f3"),
    _idx("mnist", "data/mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
         "labels", 1, "ec29112dd5afa0611ce80d1b7f02629c"),
    _idx("fashion-mnist", None, FASHION, "images", 3, "8181f5470baa50b63fa0f6fddb340f0a", True),
    _idx("fashion-mnist", None, FASHION, "labels", 1, "15d484375f8d13e6eb1aabb0c3f46965", True),
    # Its training set (the LeNets of the FSSD benchmark train on it); md5 of the idx content.
    _idx("fashion-mnist", None, FASHION, "images", 3, "f4a8712d7a061bf5bd6d2ca38dc4d50a", True,
         "train"),
    _idx("fashion-mnist", None, FASHION, "labels", 1, "9018921c3c673c538a1fc5bad174d6f9", True,
         "train"),
    # The ODIN release models (tar.gz of a pickle; networks/registry.py checks the pickle's
    # sha256 again).
    # Only densenet10's checksum is known; the others were never published with one.
    _release_model("densenet10", "wr4kjintq1tmorr",
                   "b5dcb42b3bc725deb4aaeb574255ead1380ecbea3e3720d8b9e17181a82f353d"),
    _release_model("densenet100", "vxuv11jjg8bw2v9"),
    _release_model("wideresnet10", "uiye5nw0uj6ie53"),
    # The release README links wideresnet100 to the same key as wideresnet10.
    Item("wideresnet100", (url(f"{DROPBOX}uiye5nw0uj6ie53/wideresnet100.pth.tar.gz", "", "",
                               "wideresnet100.pth", "wideresnet100.pth", root="models"),)),
    _model_file("dice_densenet10.pth.tar", "models/dice/densenet_cifar10_checkpoint_100.pth.tar",
                "deaefd082911a1c6c92aacdcfecf03c71b932acc5c08b779c85c44eccdc0c817"),
    _model_file("dice_densenet100.pth.tar", "models/dice/densenet_cifar100_checkpoint_100.pth.tar",
                "56cbe261c2612976e11aedcbd60ba00766e8c01c78f96c3f18ff561ead804d47"),
    _model_file("necas_densenet10.pth.tar",
                "models/necas/densenet_bc100_cifar10_model_best.pth.tar",
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

# Sets built at setup from an installed item (rebuild): name -> the item they come from.
REBUILT = {"TIN_crop": "tinyimagenet-test", "TIN_resize": "tinyimagenet-test",
           "TIN_val": "tinyimagenet-val",
           "TIN_lanczos": "tinyimagenet-test",   # LA-OOD's Tiny-ImageNet
           # 28x28 grey sets of the Fashion-MNIST benchmark (greysets.py)
           "CIFAR10_grey": "cifar10", "TIN_grey": "tinyimagenet-test",
           "TIN_val_grey": "tinyimagenet-val"}


def get_item(name):
    if name not in ITEMS_BY_NAME:
        raise UserError(f"unknown item {name!r}; choose from {', '.join(ITEMS_BY_NAME)}")
    return ITEMS_BY_NAME[name]


def installed_path(item):
    """The installed file or folder of ``item``, or None. A folder counts once stamped."""
    for source in item.sources:
        if source.dest.is_file() or (source.dest / STAMP).is_file():
            return source.dest
    return None


def where_to_get(item):
    """The original URLs of ``item`` with their checksums, for messages."""
    urls = [s for s in item.sources if s.where == "url"]
    return " or ".join(f"{s.location} ({s.algo} {s.digest})" if s.algo else
                       f"{s.location} (no published checksum)" for s in urls) or "the mirror"


def unavailable_message(item, why=""):
    reason = f" [{why}]" if why else ""
    return (f"{item.name} is not available here: get it from {where_to_get(item)} into "
            f"{shown(item.dest)}{reason}")


def require(name):
    """The installed path of item ``name``; Unavailable, saying where to get it, if absent."""
    item = get_item(name)
    path = installed_path(item)
    if path is None:
        raise Unavailable(unavailable_message(item))
    return path


def rebuilt_path(name):
    return data_dir() / name


def require_rebuilt(name):
    """The folder of a rebuilt set; Unavailable, saying how to build it, if not built."""
    path = rebuilt_path(name)
    if (path / STAMP).is_file():
        return path
    source = ITEMS_BY_NAME[REBUILT[name]]
    have_source = installed_path(source) is not None
    raise Unavailable(
        f"{name} is not built here: bash scripts/get_data.sh rebuilds it from {source.name}"
        + ("" if have_source else f", which is not available here either: get it from "
           f"{where_to_get(source)} into {shown(source.dest)}"))
