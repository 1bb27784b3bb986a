#!/usr/bin/python3
"""Train the default skin-lesion classifier from scratch, in a fixed wall-clock budget.

    python3 tools/train/train.py --pack .train_pack --out runs/NAME --seconds 420 [options]

Reads the pack made by pack_data.py (training and validation images only: the test images never
reach this script). Runs on a CUDA GPU when there is one (bf16, channels-last) and on the CPU
otherwise (Debian's python3-torch: use --seconds and --limit for a small run).

The recipe, and why:
- All images sit on the device as uint8; augmentation runs there in batches, so a 10k-image
  epoch takes about a second on a GPU and the CPU never limits it.
- Augmentation for images from other clinics and cameras: rotation (lesions have no up), flips,
  zoom out to 0.45x with reflected, skin-coloured or replicated borders and zoom in to 1.5x,
  off-centre shifts, aspect jitter, colour casts (per-channel gains), brightness, contrast,
  saturation, gamma, Gaussian blur, JPEG artefacts (a copy of every image at quality 30-70,
  made once) and sensor noise; then CutMix or MixUp on half the batches.
- Class imbalance (nv is 2/3 of HAM10000): either the logit-adjusted loss (Menon et al. 2021:
  cross-entropy on logits + tau * log prior, which makes the plain argmax balanced) or
  class-balanced sampling (weight n_c^-1/2) with label smoothing. ISIC 2017 images, the other
  source, are sampled twice as often as their share.
- SGD with Nesterov momentum, linear warm-up then cosine to zero over the epochs that fit the
  budget (measured after the first epoch), and an exponential moving average of the weights,
  which is what gets evaluated and saved.
- Model selection on the validation images only (HAM10000 val, ISIC 2017 val): the EMA weights
  with the best HAM10000 balanced accuracy plus ISIC melanoma-vs-rest AUC.
Writes OUT/model.pt (config, EMA weights, class list, training prior, history) and OUT/log.txt.
"""

import argparse
import csv
import io
import json
import math
import os
import random
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import build  # noqa: E402

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
MEL = CLASSES.index("mel")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------- data

def _decode(args):
    data, jpeg_quality = args
    im = Image.open(io.BytesIO(data)).convert("RGB")
    clean = np.asarray(im, dtype=np.uint8)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=jpeg_quality)  # the JPEG-artefact copy, made once
    return clean, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)


def load_pack(folder, limit, seed):
    rows = list(csv.DictReader(open(os.path.join(folder, "index.csv"))))
    if limit:
        random.Random(seed).shuffle(rows)
        rows = rows[:limit]
    blob = open(os.path.join(folder, "images.bin"), "rb").read()
    rng = random.Random(seed)
    jobs = [(blob[int(r["offset"]):int(r["offset"]) + int(r["length"])], rng.randint(30, 70)) for r in rows]
    with Pool(min(16, os.cpu_count() or 1)) as pool:
        pairs = pool.map(_decode, jobs, chunksize=64)
    clean = torch.from_numpy(np.stack([p[0] for p in pairs]))
    jpeg = torch.from_numpy(np.stack([p[1] for p in pairs]))
    labels = torch.tensor([CLASSES.index(r["dx"]) for r in rows])
    return rows, clean, jpeg, labels


# -------------------------------------------------------------------------------- augmentation

def gaussian_blur(x, sigma):
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def augment(clean_u8, jpeg_u8, size):
    """uint8 [B,H,W,3] (clean and JPEG copies) -> augmented float [B,3,size,size] in [0,1]."""
    b, dev = clean_u8.shape[0], clean_u8.device
    u = lambda *shape: torch.rand(*shape, device=dev)  # noqa: E731
    use_jpeg = (u(b) < 0.25).view(b, 1, 1, 1)
    x = torch.where(use_jpeg, jpeg_u8, clean_u8).permute(0, 3, 1, 2).float() / 255.0

    # Geometry: output pixel -> input pixel through rotation, flip, aspect, zoom and shift.
    angle = u(b) * 2 * math.pi
    zoom_out = u(b) < 0.35
    log_zoom = torch.where(zoom_out, math.log(0.45) + u(b) * (math.log(0.9) - math.log(0.45)),
                           math.log(0.9) + u(b) * (math.log(1.5) - math.log(0.9)))
    zoom = torch.exp(log_zoom)
    aspect = torch.exp((u(b) - 0.5) * 0.3)
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    sx, sy = flip * aspect / zoom, 1.0 / (aspect * zoom)
    cos, sin = torch.cos(angle), torch.sin(angle)
    shift_range = 0.1 + 0.5 * torch.clamp(1.0 / zoom - 1.0, min=0.0)  # zoomed out: more room
    tx, ty = (u(b) * 2 - 1) * shift_range, (u(b) * 2 - 1) * shift_range
    theta = torch.stack([torch.stack([cos * sx, -sin * sy, tx], 1), torch.stack([sin * sx, cos * sy, ty], 1)], 1)
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    reflected = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    replicated = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    frame = torch.cat([x[:, :, :8].flatten(2), x[:, :, -8:].flatten(2), x[:, :, :, :8].flatten(2),
                       x[:, :, :, -8:].flatten(2)], 2).mean(2).view(b, 3, 1, 1)  # the skin around the lesion
    skin = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + (1 - inside) * frame
    mode = u(b).view(b, 1, 1, 1)
    x = torch.where(mode < 0.4, reflected, torch.where(mode < 0.8, skin, replicated))

    # Colour: casts, brightness, contrast, saturation, gamma.
    gains = torch.exp((u(b, 3) - 0.5) * 0.3).view(b, 3, 1, 1)
    x = x * gains * (0.75 + 0.5 * u(b)).view(b, 1, 1, 1)
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * (0.7 + 0.6 * u(b)).view(b, 1, 1, 1)
    mean = grey.mean((2, 3), keepdim=True)
    x = mean + (x - mean) * (0.75 + 0.55 * u(b)).view(b, 1, 1, 1)
    x = x.clamp(0, 1) ** torch.exp((u(b) - 0.5) * 0.4).view(b, 1, 1, 1)

    # Blur (one sigma per batch, on a random 30%) and sensor noise.
    blurred = gaussian_blur(x, 0.4 + 1.2 * random.random())
    x = torch.where((u(b) < 0.3).view(b, 1, 1, 1), blurred, x)
    x = x + torch.where((u(b) < 0.2).view(b, 1, 1, 1), torch.randn_like(x) * 0.02, torch.zeros_like(x))
    return x.clamp(0, 1)


def normalise(x):
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def mix(x, y_soft):
    """CutMix or MixUp, each on a quarter of the batches."""
    r = random.random()
    if r > 0.5:
        return x, y_soft
    perm = torch.randperm(x.shape[0], device=x.device)
    lam = float(np.random.beta(1.0, 1.0)) if r < 0.25 else float(np.random.beta(0.4, 0.4))
    if r < 0.25:  # CutMix: a box of the other image
        h, w = x.shape[2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = random.randrange(h), random.randrange(w)
        y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * y_soft + (1 - lam) * y_soft[perm]


# ------------------------------------------------------------------------------------ metrics

def balanced_accuracy(pred, truth, classes=len(CLASSES)):
    recalls = [float((pred[truth == c] == c).float().mean()) for c in range(classes) if (truth == c).any()]
    return sum(recalls) / len(recalls)


def roc_auc(scores, positive):
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def evaluate(model, images_u8, labels, size, device, batch=256):
    model.eval()
    logits = []
    for i in range(0, len(images_u8), batch):
        x = images_u8[i:i + batch].to(device).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = normalise(x).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits.append(model(x).float().cpu())
    return torch.cat(logits)


def val_metrics(logits, labels, is_isic):
    pred = logits.argmax(1)
    ham = ~is_isic
    out = {"ham_bal_acc": balanced_accuracy(pred[ham], labels[ham]),
           "ham_mel_recall": float((pred[ham & (labels == MEL)] == MEL).float().mean())}
    if is_isic.any():
        p_mel = torch.softmax(logits[is_isic], 1)[:, MEL]
        out["isic_mel_auc"] = roc_auc(p_mel.numpy(), (labels[is_isic] == MEL).numpy())
    else:
        out["isic_mel_auc"] = 0.0
    out["score"] = out["ham_bal_acc"] + float(np.nan_to_num(out["isic_mel_auc"]))
    return out


# -------------------------------------------------------------------------------------- train

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, required=True, help="wall-clock budget for training")
    ap.add_argument("--widths", default="32,64,128,256")
    ap.add_argument("--blocks", default="2,2,2,2")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--loss", choices=["logit_adjusted", "balanced_sampling"], default="logit_adjusted")
    ap.add_argument("--tau", type=float, default=1.0, help="logit adjustment strength")
    ap.add_argument("--isic-weight", type=float, default=2.0, help="sampling weight of ISIC images")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--warmup-epochs", type=float, default=3)
    ap.add_argument("--max-epochs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only this many images (a CPU smoke run)")
    args = ap.parse_args()

    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    log_file = open(os.path.join(args.out, "log.txt"), "w")

    def log(msg):
        line = "[%6.1fs] %s" % (time.time() - t_start, msg)
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rows, clean, jpeg, labels = load_pack(args.pack, args.limit, args.seed)  # forks: before CUDA starts
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    log("args %s, device %s, torch %s" % (json.dumps(vars(args)), device, torch.__version__))
    is_isic = torch.tensor([r["source"] == "isic2017" for r in rows])
    train = torch.tensor([r["split"] == "train" for r in rows])
    val = torch.tensor([r["split"] == "val" for r in rows])
    log("decoded %d images (%d train, %d val) %s" % (len(rows), int(train.sum()), int(val.sum()), tuple(clean.shape)))

    tr_idx = torch.nonzero(train).squeeze(1)
    tr_clean, tr_jpeg, tr_labels = clean[tr_idx].to(device), jpeg[tr_idx].to(device), labels[tr_idx].to(device)
    va_images, va_labels, va_isic = clean[val], labels[val], is_isic[val]
    counts = torch.bincount(labels[tr_idx], minlength=len(CLASSES)).float()
    source_weight = torch.where(is_isic[tr_idx], args.isic_weight, 1.0)
    if args.loss == "balanced_sampling":
        sample_weight = source_weight * counts.clamp(min=1).pow(-0.5)[labels[tr_idx]]
    else:
        sample_weight = source_weight
    # The class prior the network sees (after sampling): what the logit adjustment removes.
    prior = torch.zeros(len(CLASSES)).index_add_(0, labels[tr_idx], sample_weight)
    prior = (prior / prior.sum()).clamp(min=1e-4)
    log("train counts %s; effective prior %s" % (counts.int().tolist(), [round(float(p), 4) for p in prior]))
    log_prior = prior.log().to(device)
    sample_weight = sample_weight.to(device)

    widths = [int(v) for v in args.widths.split(",")]
    blocks = [int(v) for v in args.blocks.split(",")]
    model = build(dict(widths=widths, blocks=blocks, stem=24, classes=len(CLASSES), dropout=0.2))
    model = model.to(device).to(memory_format=torch.channels_last)
    ema = build(model.config).to(device).to(memory_format=torch.channels_last)
    ema.load_state_dict(model.state_dict())
    ema.eval()
    params = sum(p.numel() for p in model.parameters())
    log("model %s: %.2f M parameters" % (json.dumps(model.config), params / 1e6))

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, nesterov=True)

    n_train = len(tr_idx)
    steps_per_epoch = max(1, n_train // args.batch)
    warmup_steps = int(args.warmup_epochs * steps_per_epoch)
    total_steps = None  # set after the first epoch, from its measured time
    step, epoch = 0, 0
    best = {"score": -1.0}
    history = []
    t_train = time.time()
    smoothing = 0.1 if args.loss == "balanced_sampling" else 0.0

    while True:
        model.train()
        t_epoch = time.time()
        order = torch.multinomial(sample_weight, n_train, replacement=True)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch:(i + 1) * args.batch]
            if total_steps is None:
                lr = args.lr * min(1.0, (step + 1) / max(1, warmup_steps))
            elif step < warmup_steps:
                lr = args.lr * (step + 1) / warmup_steps
            else:
                lr = 0.5 * args.lr * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))))
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.no_grad():
                x = normalise(augment(tr_clean[idx], tr_jpeg[idx], args.size))
                y = F.one_hot(tr_labels[idx], len(CLASSES)).float()
                y = y * (1 - smoothing) + smoothing / len(CLASSES)
                x, y = mix(x, y)
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x).float()
            if args.loss == "logit_adjusted":
                logits = logits + args.tau * log_prior
            loss = -(y * F.log_softmax(logits, 1)).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                d = min(args.ema, (1 + step) / (10 + step))
                for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
                    if e.dtype.is_floating_point:
                        e.mul_(d).add_(m.detach(), alpha=1 - d)
                    else:
                        e.copy_(m)
            loss_sum += loss.detach()  # no host sync per step
            step += 1
            if step == min(10, steps_per_epoch // 2):  # time the epoch after the warm-up (cudnn autotuning)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t_steady, steady_from = time.time(), step
        epoch += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - t_epoch
        if total_steps is None:
            seconds = (time.time() - t_steady) / max(1, step - steady_from) * steps_per_epoch
            left = args.seconds - (time.time() - t_train)
            # Validation passes are a few percent of an epoch; leave 5% of the budget for them.
            epochs = int(max(1, min(args.max_epochs - 1, 0.95 * left / seconds)))
            total_steps = step + epochs * steps_per_epoch
            log("epoch 1 took %.2f s (%.2f s at steady speed): %d more epochs fit (%d steps)"
                % (time.time() - t_epoch, seconds, epochs, total_steps))
        done = step >= total_steps or time.time() - t_train > 1.15 * args.seconds
        late = epoch >= 0.3 * total_steps / steps_per_epoch
        every = max(1, int(total_steps / steps_per_epoch / 25))
        if done or (late and epoch % every == 0) or epoch % max(1, every * 4) == 0:
            m = val_metrics(evaluate(ema, va_images, va_labels, args.size, device), va_labels, va_isic)
            m.update(epoch=epoch, loss=float(loss_sum) / steps_per_epoch, lr=lr, epoch_s=round(seconds, 2))
            history.append(m)
            log("epoch %d loss %.4f lr %.4f | val HAM bal acc %.4f mel recall %.3f | ISIC mel AUC %.4f"
                % (epoch, m["loss"], lr, m["ham_bal_acc"], m["ham_mel_recall"], m["isic_mel_auc"]))
            if (late or done) and m["score"] > best["score"]:
                best = dict(m)
                best_state = {k: v.detach().float().cpu().clone() if v.dtype.is_floating_point else v.cpu().clone()
                              for k, v in ema.state_dict().items()}
        if done:
            break

    torch.save({"config": model.config, "state_dict": best_state, "classes": CLASSES, "size": args.size,
                "mean": MEAN, "std": STD, "prior": prior.tolist(), "args": vars(args), "best": best,
                "history": history, "epochs": epoch, "train_seconds": time.time() - t_train},
               os.path.join(args.out, "model.pt"))
    log("done: %d epochs in %.0f s; best (epoch %d) %s" % (epoch, time.time() - t_train, best["epoch"],
                                                             json.dumps({k: round(v, 4) for k, v in best.items()})))


if __name__ == "__main__":
    main()
