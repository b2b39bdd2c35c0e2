"""Wide ResNet, the ODIN release's architecture (layer 2: networks).

Wide ResNet (WRN-depth-k) for 32x32 images, laid out as the ODIN release expects.

Module, class and attribute names are the release's, so that its pickled
``wideresnet10.pth`` / ``wideresnet100.pth`` (WRN-28-10) unpickle into these
classes; state_dicts with the same key names load too.
"""
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Pre-activation residual block; a 1x1 conv shortcut when the width changes."""

    def __init__(self, in_planes, out_planes, stride, dropRate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = None if self.equalInOut else nn.Conv2d(
            in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x):
        activated = self.relu1(self.bn1(x))
        # Unequal widths: the shortcut also starts from the activated input.
        shortcut = x if self.equalInOut else self.convShortcut(activated)
        out = self.conv1(activated)
        out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(self.relu2(self.bn2(out)))
        return shortcut + out


class NetworkBlock(nn.Module):
    """``nb_layers`` BasicBlocks; only the first changes width and stride."""

    def __init__(self, nb_layers, in_planes, out_planes, block, stride, dropRate=0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            block(in_planes if i == 0 else out_planes, out_planes,
                  stride if i == 0 else 1, dropRate)
            for i in range(int(nb_layers))
        ])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, num_classes, widen_factor=1, dropRate=0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], BasicBlock, 1, dropRate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], BasicBlock, 2, dropRate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], BasicBlock, 2, dropRate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        self.nChannels = widths[3]

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)
        return self.fc(out.view(-1, self.nChannels))
