"""MobileNetV2 (alpha 1.0, Keras 2.2.4 layout) in PyTorch, loaded from nsfwjs's dequantised weights.

The network is defined here (torchvision is not installed) to match the Keras graph exactly:
- stride-2 convolutions follow Keras' ZeroPadding2D(((0, 1), (0, 1))) + 'valid': the pad is
  asymmetric (bottom/right only), not PyTorch's symmetric padding=1;
- stride-1 depthwise 3x3 convolutions are 'same' = symmetric padding 1;
- BatchNormalization epsilon 1e-3 (read from each layer's config by convert_nsfwjs.py);
- ReLU6 everywhere (Keras ReLU(max_value=6)); no activation after the projection.
Input: RGB in [0, 1] (nsfwjs divides the pixels by 255 and nothing else), NCHW, 224x224.
"""

import torch
from torch import nn

# (expansion, output channels, stride) for block_1 .. block_16 (Keras names)
BLOCKS = [(6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1),
          (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1),
          (6, 160, 1), (6, 320, 1)]


def conv_bn(cin, cout, k, stride, groups=1, act=True, eps=1e-3):
    # Keras 'same' at stride 1 is symmetric (the convolution's own padding); at stride 2 Keras pads
    # bottom/right only (an explicit ZeroPad2d, which export.py folds into the ONNX Conv's pads).
    # The Identity keeps the module indices (and so the state_dict keys) the same for both.
    layers = []
    if k == 3:
        layers.append(nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity())
    pad = 1 if k == 3 and stride == 1 else 0
    layers += [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=eps)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, t, cout, stride, eps=1e-3):
        super().__init__()
        mid = cin * t
        self.expand = conv_bn(cin, mid, 1, 1, eps=eps) if t != 1 else None
        self.depthwise = conv_bn(mid, mid, 3, stride, groups=mid, eps=eps)
        self.project = conv_bn(mid, cout, 1, 1, act=False, eps=eps)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """features: [Conv1, expanded_conv, block_1..block_16, Conv_1] (18 + 1 stages); then global
    average pooling -> 1280-d. `head` is optional (nsfwjs's own 256-128-5 head, for the check)."""

    def __init__(self, eps=1e-3, nsfw_head=False):
        super().__init__()
        stages = [conv_bn(3, 32, 3, 2, eps=eps), InvertedResidual(32, 1, 16, 1, eps=eps)]
        cin = 16
        for t, c, s in BLOCKS:
            stages.append(InvertedResidual(cin, t, c, s, eps=eps))
            cin = c
        stages.append(conv_bn(cin, 1280, 1, 1, eps=eps))
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.nsfw_head = nn.Sequential(nn.Linear(1280, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                       nn.Linear(128, 5)) if nsfw_head else None

    def forward_features(self, x, start=0, stop=None):
        for stage in list(self.features)[start:stop]:
            x = stage(x)
        return x

    def forward(self, x):
        f = self.pool(self.features(x)).flatten(1)
        return f if self.nsfw_head is None else self.nsfw_head(f)


def keras_names():
    """torch module prefix -> Keras layer names (conv, BN) for every conv+BN pair."""
    pairs = [("features.0", "Conv1", "bn_Conv1"),
             ("features.1.depthwise", "expanded_conv_depthwise", "expanded_conv_depthwise_BN"),
             ("features.1.project", "expanded_conv_project", "expanded_conv_project_BN")]
    for i in range(1, 17):
        for part in ("expand", "depthwise", "project"):
            pairs.append(("features.%d.%s" % (i + 1, part), "block_%d_%s" % (i, part), "block_%d_%s_BN" % (i, part)))
    pairs.append(("features.18", "Conv_1", "Conv_1_bn"))
    return pairs


def load_keras_weights(model, w):
    """w: Keras weight name -> numpy array (dequantised). Copies every tensor into `model`."""
    sd = model.state_dict()
    used = set()

    def put(key, arr):
        t = torch.from_numpy(arr.copy()).float()
        assert sd[key].shape == t.shape, (key, sd[key].shape, t.shape)
        sd[key].copy_(t)

    for prefix, conv, bn in keras_names():
        seq = dict(model.named_modules())[prefix]
        ci = next(i for i, m in enumerate(seq) if isinstance(m, nn.Conv2d))
        if conv + "/depthwise_kernel" in w:
            k = w[conv + "/depthwise_kernel"]  # [kh, kw, in, mult]
            put("%s.%d.weight" % (prefix, ci), k.transpose(2, 3, 0, 1).reshape(-1, 1, k.shape[0], k.shape[1]))
            used.add(conv + "/depthwise_kernel")
        else:
            put("%s.%d.weight" % (prefix, ci), w[conv + "/kernel"].transpose(3, 2, 0, 1))  # [kh,kw,in,out]
            used.add(conv + "/kernel")
        for keras, torch_name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                                  ("moving_variance", "running_var")):
            put("%s.%d.%s" % (prefix, ci + 1, torch_name), w["%s/%s" % (bn, keras)])
            used.add("%s/%s" % (bn, keras))
    if model.nsfw_head is not None:
        for i, name in ((0, "dense_1"), (2, "dense_2"), (4, "dense_3")):
            put("nsfw_head.%d.weight" % i, w[name + "/kernel"].T)
            put("nsfw_head.%d.bias" % i, w[name + "/bias"])
            used |= {name + "/kernel", name + "/bias"}
    model.load_state_dict(sd)
    return sorted(set(w) - used)
