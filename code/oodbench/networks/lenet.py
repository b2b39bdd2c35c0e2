"""The FSSD suite's LeNet and its committed weights (layer 2: networks).

The LeNet of the FSSD repository (megvii-research/FSSD_OoD_Detection, lib/model/lenet.py),
the PyTorch MNIST example's network, for 1x28x28 Fashion-MNIST images.

Same module names and state_dict keys as the authors' (conv1, conv2, fc1, fc2; the dropouts
hold no weights), so a checkpoint trained here loads in their code and theirs in ours.
``forward`` returns logits. Dropout rates are those the authors' training script used
(0.25 after the pool, 0.5 after fc1); their model file says 0.25 for the second, which
matters only with dropout active (MC Dropout, training).

``layer_maps`` gives the four "layers" both FSSD and Mahalanobis read in the authors' code:
ReLU(conv1) [32x26x26], ReLU(conv2) [64x24x24] (before the pool), ReLU(fc1) [128] and the
logits [10], unpooled.
"""
import torch
from torch import nn
from torch.nn import functional as F

from oodbench.core.digests import file_digest
from oodbench.core.paths import ROOT, UserError, shown

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530   # the authors' Normalize((0.2860,), (0.3530,))
LAYER_NAMES = ("conv1", "conv2", "fc1", "logits")
# The committed LeNets (models/lenet/README.md): in the repository, whatever ODIN_MODELS_DIR says.
LENET_DIR = ROOT / "models" / "lenet"


class LeNet(nn.Module):
    def __init__(self, num_classes=10, dropout1=0.25, dropout2=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(dropout1)
        self.dropout2 = nn.Dropout(dropout2)   # on a [N, 128] vector: plain dropout
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def layer_maps(self, x, upto=len(LAYER_NAMES)):
        """The first ``upto`` of the four layer outputs (see the module docstring)."""
        maps = [F.relu(self.conv1(x))]
        if upto > 1:
            maps.append(F.relu(self.conv2(maps[0])))
        if upto > 2:
            flat = torch.flatten(self.dropout1(F.max_pool2d(maps[1], 2)), 1)
            maps.append(F.relu(self.fc1(flat)))
        if upto > 3:
            maps.append(self.fc2(self.dropout2(maps[2])))
        return maps

    def trunk(self, x):
        """Everything before the first dropout: the pooled ReLU(conv2) maps."""
        return F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)

    def head(self, pooled):
        """Logits from the trunk's output: the part of the network that has dropout."""
        return self.fc2(self.dropout2(F.relu(self.fc1(torch.flatten(self.dropout1(pooled), 1)))))

    def forward(self, x):
        return self.head(self.trunk(x))


def normalise(images):
    """[0, 1] pixels (uint8 or float, [N, 1, 28, 28]) -> the network's input."""
    if images.dtype == torch.uint8:
        images = images.float() / 255
    return (images - FMNIST_MEAN) / FMNIST_STD


def load_state(path):
    """A LeNet with the weights of ``path`` (a plain state_dict or the authors' {'net': ...})."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for bad files
        raise UserError(f"{shown(path)}: not a readable PyTorch checkpoint "
                        f"({type(e).__name__})") from None
    if isinstance(state, dict) and "net" in state:
        state = state["net"]
    if isinstance(state, dict):   # the authors' DataParallel checkpoints: 'module.' keys
        state = {k.removeprefix("module."): v for k, v in state.items()}
    model = LeNet()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise UserError(f"{shown(path)}: not a LeNet state_dict ({str(e).splitlines()[0]})") \
            from None
    return model


def committed_path(seed, oe=False):
    return LENET_DIR / f"fmnist_lenet_{'oe_' if oe else ''}seed{seed}.pt"


def known_digests():
    sums = LENET_DIR / "SHA256SUMS"
    if not sums.is_file():
        raise UserError(f"{shown(sums)} not found: restore it with git checkout")
    return dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())


def committed_digest(path):
    """The sha256 that models/lenet/SHA256SUMS gives the committed file ``path``."""
    digest = known_digests().get(path.name)
    if digest is None:
        raise UserError(f"{path.name} is not listed in {shown(LENET_DIR / 'SHA256SUMS')}")
    return digest


def load_committed(seed, oe=False, device="cpu"):
    """A committed LeNet, its sha256 checked against models/lenet/SHA256SUMS; eval mode."""
    path = committed_path(seed, oe)
    if not path.is_file():
        raise UserError(f"{shown(path)} not found: the committed LeNets are seeds 1-15 (OE: "
                        "1-3); train one with code/train.py (models/lenet/README.md)")
    digest, expected = file_digest(path, "sha256"), committed_digest(path)
    if digest != expected:
        raise UserError(f"{shown(path)}: sha256 {digest} is not the committed {expected}; "
                        "restore it with git checkout")
    return load_state(path).to(device).eval().requires_grad_(False)
