"""DenseNet-BC, the ODIN release's architecture (layer 2: networks).

DenseNet-BC for 32x32 images, laid out as the ODIN release expects.

The authors' ``densenet10.pth`` / ``densenet100.pth`` are whole pickled
modules: unpickling looks up ``densenet.DenseNet3`` and the block classes by
name and restores their attributes, so the module name, class names and
attribute names here are the release's. The same classes load plain
state_dicts (the DICE and Necas checkpoints use these key names).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """BN-ReLU-3x3 conv; the output is concatenated to the input."""

    def __init__(self, in_planes, out_planes, dropRate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, padding=1, bias=False)
        self.droprate = dropRate

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = F.dropout(out, p=self.droprate, training=self.training)
        return torch.cat([x, out], 1)


class BottleneckBlock(nn.Module):
    """BN-ReLU-1x1 conv (4k channels), BN-ReLU-3x3 conv (k channels), concat."""

    def __init__(self, in_planes, out_planes, dropRate=0.0):
        super().__init__()
        inter_planes = 4 * out_planes
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, inter_planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inter_planes)
        self.conv2 = nn.Conv2d(inter_planes, out_planes, 3, padding=1, bias=False)
        self.droprate = dropRate

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(self.relu(self.bn2(out)))
        out = F.dropout(out, p=self.droprate, training=self.training)
        return torch.cat([x, out], 1)


class TransitionBlock(nn.Module):
    """BN-ReLU-1x1 conv to ``out_planes`` channels, then 2x2 average pool."""

    def __init__(self, in_planes, out_planes, dropRate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 1, bias=False)
        self.droprate = dropRate

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = F.dropout(out, p=self.droprate, training=self.training)
        return F.avg_pool2d(out, 2)


class DenseBlock(nn.Module):
    """``nb_layers`` blocks, layer i taking ``in_planes + i * growth_rate`` channels."""

    def __init__(self, nb_layers, in_planes, growth_rate, block, dropRate=0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            block(in_planes + i * growth_rate, growth_rate, dropRate)
            for i in range(int(nb_layers))
        ])

    def forward(self, x):
        return self.layer(x)


class DenseNet3(nn.Module):
    """Three dense blocks with two transitions; depth 100 gives 16 layers a block."""

    def __init__(self, depth, num_classes, growth_rate=12, reduction=0.5,
                 bottleneck=True, dropRate=0.0):
        super().__init__()
        n = (depth - 4) // 3
        block = BasicBlock
        if bottleneck:
            n //= 2
            block = BottleneckBlock
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, planes, 3, padding=1, bias=False)
        self.block1 = DenseBlock(n, planes, growth_rate, block, dropRate)
        planes += n * growth_rate
        self.trans1 = TransitionBlock(planes, int(math.floor(planes * reduction)), dropRate)
        planes = int(math.floor(planes * reduction))
        self.block2 = DenseBlock(n, planes, growth_rate, block, dropRate)
        planes += n * growth_rate
        self.trans2 = TransitionBlock(planes, int(math.floor(planes * reduction)), dropRate)
        planes = int(math.floor(planes * reduction))
        self.block3 = DenseBlock(n, planes, growth_rate, block, dropRate)
        planes += n * growth_rate
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(planes, num_classes)
        self.in_planes = planes

    def forward(self, x):
        out = self.conv1(x)
        out = self.trans1(self.block1(out))
        out = self.trans2(self.block2(out))
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)
        return self.fc(out.view(-1, self.in_planes))
