#!/usr/bin/python3
"""Writes a ResNet-50 with random weights as ONNX: a bigger model for bench/vs_ort.py.

    /usr/bin/python3 bench/make_resnet50.py [OUT] [--classes 1000] [--seed 0]

OUT defaults to build/bench/models/resnet50_224.onnx (a build product, never committed).
torchvision's ResNet-50 (v1.5: the stride on the 3x3 conv of each bottleneck), written out here
because torchvision is not installed, with its initialisation under a fixed seed; exported in eval
mode with opset 13 for input [1, 3, 224, 224]. Only the speed and memory of the architecture
matter to the benchmark, not what the weights predict.
"""

import argparse
import os

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def conv_bn(cin, cout, k, stride=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(*conv_bn(cin, width, 1), nn.ReLU(inplace=True),
                                  *conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),
                                  *conv_bn(width, cout, 1))
        # A projection where the shape changes, as torchvision's `downsample`.
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet50(nn.Module):
    def __init__(self, classes):
        super().__init__()
        layers = [*conv_bn(3, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for i, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
            for b in range(blocks):
                layers.append(Bottleneck(cin, width, 2 if b == 0 and i > 0 else 1))
                cin = width * Bottleneck.expansion
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # exported as GlobalAveragePool: Dermal's Grad-CAM layer
        self.fc = nn.Linear(cin, classes)
        # torchvision's initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "build", "bench", "models", "resnet50_224.onnx"))
    ap.add_argument("--classes", type=int, default=1000, help="1000 (ImageNet, the default) or 7 (HAM10000)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = ResNet50(a.classes).eval()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), a.out, opset_version=13,
                      input_names=["input"], output_names=["logits"])
    print("%s: ResNet-50, %d classes, %.1f M parameters"
          % (a.out, a.classes, sum(p.numel() for p in model.parameters()) / 1e6))


if __name__ == "__main__":
    main()
