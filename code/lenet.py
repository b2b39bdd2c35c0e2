"""The LeNet of the FSSD repository (megvii-research/FSSD_OoD_Detection, lib/model/lenet.py),
the PyTorch MNIST example's network, for 1x28x28 Fashion-MNIST images (layer 2).

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

FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530   # the authors' Normalize((0.2860,), (0.3530,))
LAYER_NAMES = ("conv1", "conv2", "fc1", "logits")


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

    def forward(self, x):
        return self.layer_maps(x)[-1]


def normalise(images):
    """[0, 1] pixels (uint8 or float, [N, 1, 28, 28]) -> the network's input."""
    if images.dtype == torch.uint8:
        images = images.float() / 255
    return (images - FMNIST_MEAN) / FMNIST_STD
