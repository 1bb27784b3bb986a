#!/usr/bin/python3
"""Fine-tune the whole nsfwjs MobileNetV2 (every stage, BatchNorm statistics included) on
HAM10000 + ISIC 2017 train images with online augmentation, on the CPU or a GPU:

    /usr/bin/python3 finetune_full.py WEIGHTS.pt OUT_DIR [--epochs 15] [--threads 2] [--resume]
        [--init RUN/model.pt] [--teacher TEACHER.npz --distil 0.7]

Where finetune.py trains the last stages on cached maps, this trains all of them on images
augmented afresh each epoch (extract.augment: rotations/flips, zoom out and in, colour casts,
exposure, blur, JPEG), which is what the ISIC 2018 entries that reached 80% did. Channels-last
layout: a training step costs about 46 ms an image on this machine's 2 cores, so an epoch of the
9,036 train images takes about 7 minutes (measured: tools/train/NOTES.md).
Recipe as finetune.py (NOTES.md, run b): class-balanced sampling (n_c^-1/2, ISIC x2), label
smoothing 0.1, prior correction -1 at evaluation and export, AdamW with a cosine schedule (head
lr x3), selection every epoch on validation only (HAM10000 balanced accuracy + ISIC melanoma AUC).
Checkpoints every epoch (OUT_DIR/last.pt; --resume continues from it). OUT_DIR/model.pt is the
best epoch, in finetune.py's format with split_at 0, so export.py and ensemble.py take it as is.

Distillation (--teacher, from teacher.py: an ensemble's balanced probabilities on each *clean*
train image): the loss adds --distil x T^2 x KL(teacher || student) at temperature T
(--distil-temperature) to (1 - --distil) x the label loss. The student's prior-corrected
probabilities are matched, as the teacher's are balanced ones, and the target stays the clean
image's while the student sees an augmented copy, which asks for the same answer under the
camera's changes. --init starts from a previous run's model.pt instead of nsfwjs's head.
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
from extract import CLASSES, image_batch, items  # noqa: E402
from finetune import Tail, balanced_sampling, metrics, run_log, set_cosine_lr  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4, help="backbone learning rate (head: x3)")
    ap.add_argument("--wd", type=float, default=0.02)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--isic-weight", type=float, default=2.0)
    ap.add_argument("--class-power", type=float, default=-0.5)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--limit-steps", type=int, default=0, help="steps per epoch (0: a full epoch); for a smoke test")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", help="start from this model.pt (a previous run's best) instead of nsfwjs's weights")
    ap.add_argument("--teacher", help="teacher.py's .npz: distil its probabilities")
    ap.add_argument("--distil", type=float, default=0.7, help="weight of the distillation term (with --teacher)")
    ap.add_argument("--distil-temperature", type=float, default=2.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log = run_log(args.out, args)
    train, val = items({"train"}), items({"val"})
    tr_labels = np.array([t[1] for t in train])
    tr_isic = np.array([t[2] for t in train])
    va_labels = np.array([v[1] for v in val])
    va_isic = np.array([v[2] for v in val])
    p_draw, prior, _ = balanced_sampling(tr_labels, tr_isic, args.isic_weight, args.class_power)
    log_prior = np.log(prior)

    model = Tail(args.weights, args.dropout, split_at=0).to(memory_format=torch.channels_last)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu")["state_dict"])
    teacher = None
    if args.teacher:
        t = np.load(args.teacher)
        by_id = dict(zip(t["ids"], t["probs"]))
        teacher = torch.from_numpy(np.stack([by_id[it[4]] for it in train]).astype(np.float32))
        # softened at the distillation temperature: p^(1/T), renormalised
        teacher = torch.softmax(torch.log(teacher.clamp_min(1e-8)) / args.distil_temperature, 1)
    log_prior_t = torch.from_numpy(log_prior.astype(np.float32))
    head = list(model.fc.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("fc")]
    opt = torch.optim.AdamW([{"params": head, "lr": args.lr * 3}, {"params": body, "lr": args.lr}],
                            weight_decay=args.wd)
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = args.limit_steps or len(train) // args.batch
    total = steps_per_epoch * args.epochs
    ce = nn.CrossEntropyLoss(label_smoothing=args.smoothing)
    state = {"epoch": 0, "step": 0, "best": -1.0, "best_state": None, "best_m": None, "history": []}
    last = os.path.join(args.out, "last.pt")
    if args.resume and os.path.exists(last):
        ck = torch.load(last, map_location="cpu")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        log("resumed after epoch %d" % state["epoch"])

    def evaluate():
        model.eval()
        zs = []
        with torch.no_grad():
            for s in range(0, len(val), 64):
                zs.append(model(image_batch([v[0] for v in val[s:s + 64]])))
        return torch.cat(zs).numpy()

    t0 = time.time()
    for epoch in range(state["epoch"], args.epochs):
        model.train()
        rng = np.random.default_rng(args.seed * 1000 + epoch)
        idx = rng.choice(len(train), size=steps_per_epoch * args.batch, p=p_draw)
        losses = []
        for s in range(steps_per_epoch):
            set_cosine_lr(opt, base_lrs, state["step"], total)
            bi = idx[s * args.batch:(s + 1) * args.batch]
            x = image_batch([train[i][0] for i in bi], rng)
            z = model(x)
            loss = ce(z, torch.from_numpy(tr_labels[bi]))
            if teacher is not None:
                td = args.distil_temperature
                log_q = torch.log_softmax((z - log_prior_t) / td, 1)
                kl = nn.functional.kl_div(log_q, teacher[torch.from_numpy(bi)], reduction="batchmean")
                loss = (1 - args.distil) * loss + args.distil * td * td * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            state["step"] += 1
            if s % 50 == 0:
                log("epoch %d step %d/%d loss %.4f (%.0f s)" % (epoch + 1, s, steps_per_epoch, np.mean(losses),
                                                                 time.time() - t0))
        z = evaluate()
        m = metrics(z, va_labels, va_isic, log_prior)
        score = m["bal_acc"] + m["isic_auc"]
        state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "corrected": m,
                                 "seconds": time.time() - t0})
        log("epoch %d loss %.4f | corrected: bal acc %.4f mel rec %.3f ISIC AUC %.4f recalls %s | %.0f s"
            % (epoch + 1, np.mean(losses), m["bal_acc"], m["mel_recall"], m["isic_auc"], m["recalls"],
               time.time() - t0))
        if score > state["best"]:
            state["best"], state["best_m"] = score, dict(m, epoch=epoch + 1)
            state["best_state"] = copy.deepcopy(model.state_dict())
            np.save(os.path.join(args.out, "val_logits.npy"), z)
        state["epoch"] = epoch + 1
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, last)
    torch.save({"state_dict": state["best_state"], "prior": prior.tolist(), "classes": CLASSES, "args": vars(args),
                "best": state["best_m"], "history": state["history"], "split_at": 0,
                "train_seconds": time.time() - t0}, os.path.join(args.out, "model.pt"))
    log("best %s" % json.dumps(state["best_m"]))


if __name__ == "__main__":
    main()
