#!/usr/bin/python3
"""Train a 7-class head, and optionally fine-tune the stages after the cut (block_11..block_16 +
Conv_1 for maps cut at block_10), of nsfwjs's MobileNetV2 on the maps cached by extract.py -- on
the CPU.

    /usr/bin/python3 finetune.py WEIGHTS.pt MAPS_DIR OUT_DIR \
        [--views 0,1,2,3] [--mode linear|tail] [--epochs N] [--seconds S] [--seed 1] [--threads N]

Recipe (NOTES.md, run b): class-balanced sampling (image weight n_c^-1/2, ISIC images x2), label
smoothing 0.1, the training prior removed afterwards (prior correction alpha = -1: logits -
log prior, folded into the bias at export). Each draw picks one of the image's cached views
(view 0 = clean, >= 1 = augmented). BatchNormalization keeps nsfwjs's statistics (eval mode);
its scale and shift train with the convolutions (mode tail). AdamW, cosine schedule.
Selection, every epoch, on validation only (HAM10000 val + ISIC 2017 val, clean view 0):
HAM10000 balanced accuracy (after prior correction) + ISIC 2017 melanoma-vs-rest AUC.
Writes OUT_DIR/model.pt (tail + head state, prior, history) and OUT_DIR/log.txt.
"""

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from mobilenet_v2 import MobileNetV2  # noqa: E402
from extract import CLASSES, SPLIT_AT  # noqa: E402
from train import roc_auc  # noqa: E402

MEL = CLASSES.index("mel")


class Tail(nn.Module):
    def __init__(self, weights, dropout=0.2, split_at=SPLIT_AT):
        super().__init__()
        m = MobileNetV2(nsfw_head=True)
        m.load_state_dict(torch.load(weights, map_location="cpu")["state_dict"])
        self.tail = m.features[split_at:]
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, len(CLASSES))

    def pooled(self, maps):
        return self.tail(maps).mean((2, 3))

    def forward(self, maps):
        return self.fc(self.drop(self.pooled(maps)))


def run_log(out, args):
    """A function that prints a timestamped line and appends it to OUT/log.txt; logs the args."""
    os.makedirs(out, exist_ok=True)
    logf = open(os.path.join(out, "log.txt"), "a")

    def log(s):
        line = "[%s] %s" % (time.strftime("%H:%M:%S"), s)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    log("args %s" % json.dumps(vars(args)))
    return log


def balanced_sampling(labels, is_isic, isic_weight, class_power):
    """Per-image draw probabilities (n_c^class_power, ISIC images x isic_weight) and the class prior
    they make the network learn (what prior correction later removes): (p_draw, prior, counts)."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    w = np.where(is_isic, isic_weight, 1.0) * counts[labels] ** class_power
    prior = np.zeros(len(CLASSES))
    np.add.at(prior, labels, w)
    prior = np.clip(prior / prior.sum(), 1e-4, None)
    return w / w.sum(), prior, counts


def set_cosine_lr(opt, base_lrs, step, total):
    scale = 0.5 * (1 + np.cos(np.pi * step / total))
    for g, b in zip(opt.param_groups, base_lrs):
        g["lr"] = b * scale


def metrics(logits, labels, is_isic, log_prior, alpha=-1.0):
    z = logits + alpha * log_prior
    pred = z.argmax(1)
    ham = ~is_isic
    rec = [float((pred[ham & (labels == c)] == c).mean()) for c in range(len(CLASSES))]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return {"bal_acc": float(np.mean(rec)), "mel_recall": rec[MEL], "recalls": [round(r, 3) for r in rec],
            "isic_auc": roc_auc(p[is_isic, MEL], labels[is_isic] == MEL),
            "isic_bal_acc": float(np.mean([(pred[is_isic & (labels == c)] == c).mean()
                                           for c in (2, 4, 5)]))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("maps")
    ap.add_argument("out")
    ap.add_argument("--views", default="0")
    ap.add_argument("--mode", choices=["linear", "tail"], default="tail")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=0, help="stop starting epochs after this long")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4, help="tail learning rate (head: x3)")
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--isic-weight", type=float, default=2.0)
    ap.add_argument("--class-power", type=float, default=-0.5)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    log = run_log(args.out, args)
    views = [int(v) for v in args.views.split(",")]
    v0 = np.load(os.path.join(args.maps, "view0.npz"))
    # maps written before the cut was an option were cut after block_12
    split_at = int(v0["split_at"]) if "split_at" in v0.files else 14
    ids0 = list(v0["ids"])
    tr = v0["split"] == 0
    va = v0["split"] == 1
    tr_ids = [i for i, t in zip(ids0, tr) if t]
    tr_labels, tr_isic = v0["labels"][tr], v0["is_isic"][tr]
    va_maps = torch.from_numpy(v0["maps"][va].astype(np.float32))
    va_labels, va_isic = v0["labels"][va], v0["is_isic"][va]
    train_maps = [v0["maps"][tr]]  # one array per view, rows aligned with tr_ids
    for v in views:
        if v == 0:
            continue
        d = np.load(os.path.join(args.maps, "view%d.npz" % v))
        assert list(d["ids"]) == tr_ids, "view %d rows differ from view 0's train rows" % v
        assert (int(d["split_at"]) if "split_at" in d.files else 14) == split_at, "view %d cut elsewhere" % v
        train_maps.append(d["maps"])
    if 0 not in views:
        train_maps = train_maps[1:]
    log("train %d images x %d views, val %d (%d ISIC), maps cut after stage %d" % (
        len(tr_ids), len(train_maps), int(va.sum()), int(va_isic.sum()), split_at))

    p_draw, prior, counts = balanced_sampling(tr_labels, tr_isic, args.isic_weight, args.class_power)
    log_prior = np.log(prior)
    log("train counts %s; effective prior %s" % (counts.astype(int).tolist(), np.round(prior, 4).tolist()))

    model = Tail(args.weights, args.dropout, split_at)
    model.tail.eval()  # BN statistics stay nsfwjs's
    if args.mode == "linear":
        for p in model.tail.parameters():
            p.requires_grad = False
        # pooled features once per view: the tail is frozen
        with torch.no_grad():
            feats = [torch.cat([model.pooled(torch.from_numpy(m[i:i + 256].astype(np.float32)))
                                for i in range(0, len(m), 256)]) for m in train_maps]
            va_feat = torch.cat([model.pooled(va_maps[i:i + 256]) for i in range(0, len(va_maps), 256)])
        log("pooled features computed")
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1 and not n.startswith("fc")]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1 and not n.startswith("fc")]
    head_lr = args.lr * 3 if args.mode == "tail" else args.lr
    groups = [{"params": model.fc.parameters(), "lr": head_lr, "weight_decay": args.wd}]
    if decay:
        groups += [{"params": decay, "lr": args.lr, "weight_decay": args.wd},
                   {"params": no_decay, "lr": args.lr, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups)
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = len(tr_ids) // args.batch
    total = steps_per_epoch * args.epochs
    ce = nn.CrossEntropyLoss(label_smoothing=args.smoothing)

    def evaluate():
        model.eval()
        with torch.no_grad():
            if args.mode == "linear":
                z = model.fc(va_feat)
            else:
                z = torch.cat([model(va_maps[i:i + 128]) for i in range(0, len(va_maps), 128)])
        model.train()
        model.tail.eval()
        return z.numpy()

    best, best_state, history, step, t0 = -1.0, None, [], 0, time.time()
    for epoch in range(args.epochs):
        if args.seconds and time.time() - t0 > args.seconds:
            log("time budget reached")
            break
        model.train()
        model.tail.eval()
        idx = rng.choice(len(tr_ids), size=steps_per_epoch * args.batch, p=p_draw)
        vidx = rng.integers(len(train_maps), size=len(idx))
        losses = []
        for s in range(steps_per_epoch):
            set_cosine_lr(opt, base_lrs, step, total)
            bi, bv = idx[s * args.batch:(s + 1) * args.batch], vidx[s * args.batch:(s + 1) * args.batch]
            y = torch.from_numpy(tr_labels[bi])
            if args.mode == "linear":
                x = torch.stack([feats[v][i] for i, v in zip(bi, bv)])
                logits = model.fc(model.drop(x))
            else:
                x = torch.from_numpy(np.stack([train_maps[v][i] for i, v in zip(bi, bv)]).astype(np.float32))
                logits = model(x)
            loss = ce(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            step += 1
        z = evaluate()
        m = metrics(z, va_labels, va_isic, log_prior)
        m0 = metrics(z, va_labels, va_isic, log_prior, alpha=0.0)
        score = m["bal_acc"] + m["isic_auc"]
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "corrected": m, "plain": m0,
                        "seconds": time.time() - t0})
        log("epoch %d loss %.4f | corrected: bal acc %.4f mel rec %.3f ISIC AUC %.4f ISIC bal acc %.3f recalls %s | "
            "plain bal acc %.4f | %.0f s" % (epoch + 1, np.mean(losses), m["bal_acc"], m["mel_recall"], m["isic_auc"],
                                             m["isic_bal_acc"], m["recalls"], m0["bal_acc"], time.time() - t0))
        if score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
            best_m = dict(m, epoch=epoch + 1)
            np.save(os.path.join(args.out, "val_logits.npy"), z)
    torch.save({"state_dict": best_state, "prior": prior.tolist(), "classes": CLASSES, "args": vars(args),
                "best": best_m, "history": history, "split_at": split_at, "train_seconds": time.time() - t0},
               os.path.join(args.out, "model.pt"))
    log("best %s" % json.dumps(best_m))


if __name__ == "__main__":
    main()
