"""The default model's network: a small ResNet (basic blocks) for 160x160 dermoscopy images.

Plain PyTorch, no torchvision, so the same file builds the network in Debian's python3-torch (CPU,
export, calibration) and on a CUDA machine (training). Only ops Dermal's engine runs: Conv,
BatchNormalization (folded into Conv on export), Relu, Add, GlobalAveragePool, Flatten, Gemm.

Unlike torchvision's ResNet there is no max-pool after the stem: the network's stride is 16, so
the last block (the Grad-CAM layer) is 10x10 at 160x160 input instead of 5x5, and small lesions
keep more pixels through the network.
"""

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: trains deep nets from scratch
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + identity)


class SkinNet(nn.Module):
    def __init__(self, widths=(32, 64, 128, 256), blocks=(2, 2, 2, 2), stem=24, classes=7, dropout=0.2):
        super().__init__()
        self.config = dict(widths=list(widths), blocks=list(blocks), stem=stem, classes=classes, dropout=dropout)
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x):
        return self.blocks(self.stem(x))

    def forward(self, x):
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


def build(config):
    return SkinNet(**config)
