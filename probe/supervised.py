"""The supervised baseline: a zoo trunk trained from scratch (random init) plus a linear head.

``python -m probe.supervised --model resnet18 --dataset first_radio_galaxy`` trains at the
same label fractions and seeds as ``probe.linear`` and writes the same ``results.json``
(``protocol: "supervised"``), so probes and baseline share one table and figure.

Training: images held in memory at ``--image-size`` (optionally a centred crop first),
random 90-degree rotations, flips and small-angle rotations, AdamW with a linear warm-up
and a cosine schedule, cross-entropy weighted by inverse class counts on unbalanced sets.
Batch-norm statistics are re-estimated on the training images before the test split is
predicted (sparse radio images make running averages lag). Every epoch is checkpointed
atomically to ``OUTPUT/runs/<model>/f<fraction>_s<seed>/last.pth``; ``--resume`` continues
each run where it stopped and skips finished ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from astrodet.utils import atomic_save_torch, atomic_write_json, prepare_output_dir, seed_everything

from .datasets import AUTO, ProbeSplit, is_unbalanced, load_split, prepare_image, resolve_stretch
from .features import _effective_kwargs, resolve_device, setup_logging
from .heads import class_weights
from .linear import DEFAULT_FRACTIONS, add_sweep_args, fraction_indices, resolve_seeds
from .results import _safe, load_results, make_run, write_results

logger = logging.getLogger(__name__)

__all__ = ["Classifier", "augment", "main", "run_supervised", "train_one"]

SUPERVISED_MODELS = ("resnet18", "resnet50", "mae", "dino", "dinov2", "msn")


class Classifier(nn.Module):
    """A zoo trunk (preprocessing + probe feature) followed by a linear layer."""

    def __init__(self, trunk: nn.Module, num_classes: int):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.feature_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(images))


def augment(images: torch.Tensor, generator: torch.Generator, max_degrees: float) -> torch.Tensor:
    """Per image: a random multiple of 90 degrees plus up to ``max_degrees`` of rotation and
    a random horizontal flip, in one resampling (multiples of 90 degrees alone are exact)."""
    n = images.shape[0]
    k = torch.randint(0, 4, (n,), generator=generator).float()
    jitter = (torch.rand(n, generator=generator) * 2 - 1) * max_degrees
    angle = torch.deg2rad(k * 90.0 + jitter)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, zero], 1), torch.stack([sin * flip, cos, zero], 1)], 1
    ).to(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _load_images(split: ProbeSplit, *, stretch, image_size, center_crop) -> torch.Tensor:
    images = [
        prepare_image(
            d,
            stretch=stretch,
            image_size=image_size,
            center_crop=center_crop,
            grey_one_channel=True,
        )
        for d in tqdm(split.dicts, desc=f"load {split.dataset}_{split.split}", leave=False)
    ]
    channels = max(x.shape[0] for x in images)
    # float16 halves the memory of a set held whole and keeps faint pixels (uint8 would not)
    return torch.stack([x.expand(channels, -1, -1) for x in images]).to(torch.float16)


def _schedule(step: int, *, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def precise_bn(model: nn.Module, images: torch.Tensor, *, batch_size: int, device) -> None:
    """Re-estimate batch-norm running statistics as exact averages over ``images``."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
    model.train()
    for i in range(0, len(images), batch_size):
        model(images[i : i + batch_size].to(device, torch.float32))
    for bn, m in zip(bns, momenta):
        bn.momentum = m


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int, device) -> np.ndarray:
    model.eval()
    out = [
        model(images[i : i + batch_size].to(device, torch.float32)).argmax(1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy()


def train_one(
    *,
    model_name: str,
    train_images: torch.Tensor,
    train_labels: np.ndarray,
    num_classes: int,
    run_dir: Path,
    seed: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    warmup_epochs: float,
    rotate_degrees: float,
    balanced: bool,
    model_kwargs: dict,
    device: torch.device,
    resume: bool,
    stop_after: int | None = None,
) -> tuple[nn.Module | None, dict]:
    """Train one run, checkpointing every epoch; returns (model or None if stopped, state)."""
    from astrodet.zoo import build_trunk

    seed_everything(seed)
    trunk = build_trunk(model_name, weights="none", **model_kwargs)
    model = Classifier(trunk, num_classes).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=lr,
    )
    steps_per_epoch = math.ceil(len(train_labels) / batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, int(round(warmup_epochs * steps_per_epoch)))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _schedule(s, total=total, warmup=warmup)
    )
    gen = torch.Generator().manual_seed(seed)
    state = {"epoch": 0, "history": [], "resumed_from": [], "train_seconds": 0.0}
    ckpt = run_dir / "last.pth"
    if resume and ckpt.exists():
        try:
            saved = torch.load(ckpt, map_location=device, weights_only=False)
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            gen.set_state(saved["generator"])
            state = saved["state"]
        except Exception as e:
            raise RuntimeError(f"cannot resume from checkpoint {ckpt}: {e}") from e
        if saved.get("epochs") != epochs:
            raise ValueError(
                f"checkpoint {ckpt} was trained for --epochs {saved.get('epochs')}, not {epochs}"
            )
        state["resumed_from"].append(state["epoch"])
        logger.info("resumed %s at epoch %d", run_dir, state["epoch"])
    weight = None
    if balanced:
        weight = torch.from_numpy(class_weights(train_labels, num_classes).astype(np.float32))
        weight = weight.to(device)
    y_all = torch.from_numpy(train_labels.astype(np.int64))
    ran = 0
    bar = tqdm(range(state["epoch"], epochs), desc=run_dir.name, unit="epoch", leave=False)
    for epoch in bar:
        if stop_after is not None and ran >= stop_after:
            logger.info("stopping %s after %d epochs (continue with --resume)", run_dir, ran)
            return None, state
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y_all), generator=gen)
        total_loss, seen = 0.0, 0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            if len(idx) < 2 and len(perm) > 1:
                continue  # batch norm needs two samples
            x = augment(train_images[idx].float(), gen, rotate_degrees).to(device)
            y = y_all[idx].to(device)
            loss = F.cross_entropy(model(x), y, weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            seen += len(idx)
        state["epoch"] = epoch + 1
        state["train_seconds"] += time.perf_counter() - t0
        state["history"].append(
            {"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "lr": sched.get_last_lr()[0]}
        )
        bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}")
        logger.info(
            "%s epoch %d/%d: loss %.4f (%.0f s)",
            run_dir.name,
            epoch + 1,
            epochs,
            total_loss / max(seen, 1),
            time.perf_counter() - t0,
        )
        atomic_save_torch(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": gen.get_state(),
                "state": state,
                "epochs": epochs,
            },
            ckpt,
        )
        ran += 1
    return model, state


def run_supervised(
    *,
    model: str = "resnet18",
    dataset: str,
    fractions=DEFAULT_FRACTIONS,
    seeds=3,
    epochs: int = 30,
    image_size: int = 128,
    center_crop: int | None = None,
    stretch: str | None = AUTO,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup_epochs: float = 1.0,
    rotate_degrees: float = 15.0,
    model_kwargs: dict | None = None,
    label_scheme: str | None = None,
    limit: int | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    device: str = AUTO,
    stop_after: int | None = None,
) -> dict | None:
    """Train ``model`` from scratch at each label fraction and seed; write ``results.json``.

    Args:
        model: zoo name (``resnet18``, ``resnet50``, or a ViT such as ``mae`` = ViT-B/16).
        dataset: probe data set name.
        fractions: label fractions of the training split.
        seeds: number of seeds (0..N-1) or the list of seeds.
        epochs: training epochs per run.
        image_size: square training and test size.
        center_crop: crop this many native pixels around the centre before resizing.
        stretch: ``"auto"`` (the data set's), a stretch name, or None.
        batch_size, lr, weight_decay, warmup_epochs: AdamW and its warm-up + cosine schedule.
        rotate_degrees: largest small-angle rotation added to the 90-degree rotations.
        model_kwargs: architecture kwargs for ``build_trunk``.
        label_scheme: RGZ relabelling.
        limit: use a fixed subset of this many images per split.
        output: output folder (default ``output/probe/<dataset>_supervised_<model>``).
        overwrite, resume: what to do with an existing output folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        stop_after: stop after this many epochs in this call (resume later).

    Returns:
        the results dict, or None when ``stop_after`` stopped a run early.
    """
    from .datasets import check_dataset, check_model

    check_model(model)
    dataset = check_dataset(dataset)
    fractions = [float(f) for f in fractions]
    seeds = resolve_seeds(seeds)
    output = Path(output or Path("output") / "probe" / f"{dataset}_supervised_{model}")
    prepare_output_dir(output, overwrite=overwrite, resume=resume)
    dev = resolve_device(device)
    stretch = resolve_stretch(dataset, stretch)
    kwargs = _effective_kwargs(model, image_size, model_kwargs)
    train = load_split(dataset, "train", label_scheme=label_scheme, limit=limit)
    test = load_split(dataset, "test", label_scheme=label_scheme, limit=limit)
    prep = {"stretch": stretch, "image_size": image_size, "center_crop": center_crop}
    train_images = _load_images(train, **prep)
    test_images = _load_images(test, **prep)
    balanced = is_unbalanced(train.labels, train.num_classes)
    settings = {
        "model": model,
        "fractions": fractions,
        "seeds": seeds,
        "epochs": epochs,
        "image_size": image_size,
        "center_crop": center_crop,
        "stretch": stretch,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_epochs": warmup_epochs,
        "rotate_degrees": rotate_degrees,
        "model_kwargs": kwargs,
        "label_scheme": label_scheme,
        "limit": limit,
        "class_weighted": balanced,
        "augmentation": "rot90 + flip + small-angle rotation",
    }
    atomic_write_json(output / "config.json", settings)
    runs = []
    if resume and (output / "results.json").exists():
        runs = [r for r in load_results(output)["runs"] if (output / r["predictions"]).is_file()]
    done = {(r["model"], float(r["fraction"]), int(r["seed"])) for r in runs}

    def save() -> Path:
        return write_results(
            output,
            dataset=dataset,
            protocol="supervised",
            head="linear",
            class_names=train.class_names,
            runs=runs,
            settings=settings,
        )

    for fraction in fractions:
        for seed in seeds:
            run_dir = output / "runs" / _safe(model) / f"f{fraction:g}_s{seed}"
            record = run_dir / "record.json"
            if (model, fraction, seed) in done:
                continue
            if resume and record.is_file():
                runs.append(json.loads(record.read_text()))
                logger.info("run %s finished before; skipped", run_dir)
                continue
            idx, raised = fraction_indices(train.labels, fraction, seed, train.class_names)
            trained, state = train_one(
                model_name=model,
                train_images=train_images[idx],
                train_labels=train.labels[idx],
                num_classes=train.num_classes,
                run_dir=run_dir,
                seed=seed,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                weight_decay=weight_decay,
                warmup_epochs=warmup_epochs,
                rotate_degrees=rotate_degrees,
                balanced=balanced,
                model_kwargs=kwargs,
                device=dev,
                resume=resume,
                stop_after=stop_after,
            )
            if trained is None:
                return None
            precise_bn(trained, train_images[idx], batch_size=batch_size, device=dev)
            pred = predict(trained, test_images, batch_size=2 * batch_size, device=dev)
            run = make_run(
                output=output,
                model=model,
                fraction=fraction,
                seed=seed,
                n_train=len(idx),
                y_true=test.labels,
                y_pred=pred,
                num_classes=test.num_classes,
                epochs=state["epoch"],
                train_seconds=round(state["train_seconds"], 2),
                final_loss=state["history"][-1]["loss"] if state["history"] else None,
                resumed_from=state["resumed_from"],
                raised_classes=raised,
                class_weighted=balanced,
            )
            atomic_save_torch({"model": trained.state_dict()}, run_dir / "model_final.pth")
            atomic_write_json(record, {**run, "history": state["history"]})
            (run_dir / "last.pth").unlink(missing_ok=True)
            runs.append(run)
            logger.info(
                "%s fraction %g seed %d: macro F1 %.4f accuracy %.4f (%.0f s)",
                model,
                fraction,
                seed,
                run["macro_f1"],
                run["accuracy"],
                state["train_seconds"],
            )
            save()
    return load_results(save())


def main(argv: list[str] | None = None) -> int:
    from .features import _dataset_name, _json_dict, _model_name
    from .linear import format_summary

    parser = argparse.ArgumentParser(
        prog="python -m probe.supervised",
        description="Train a zoo backbone from scratch (+ linear head) at several label "
        "fractions: the supervised baseline of the probes.",
    )
    parser.add_argument(
        "--model",
        type=_model_name,
        default="resnet18",
        help="zoo architecture trained from random init (default resnet18)",
    )
    parser.add_argument("--dataset", type=_dataset_name, required=True, help="probe data set")
    add_sweep_args(parser)
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run (default 30)")
    parser.add_argument("--image-size", type=int, default=128, help="input size (default 128)")
    parser.add_argument(
        "--center-crop",
        type=int,
        default=None,
        help="crop N native pixels around the centre before resizing",
    )
    parser.add_argument("--stretch", default=AUTO, help="'auto' (the data set's), a name, 'none'")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument(
        "--rotate-degrees",
        type=float,
        default=15.0,
        help="small-angle rotation range added to 90-degree rotations",
    )
    parser.add_argument(
        "--model-kwargs", type=_json_dict, default=None, help="architecture kwargs as JSON"
    )
    parser.add_argument("--label-scheme", choices=("morphology", "peaks", "components"))
    parser.add_argument("--limit", type=int, default=None, help="use N images per split")
    parser.add_argument("--device", default=AUTO)
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after N epochs in this call; continue with --resume",
    )
    args = parser.parse_args(argv)
    setup_logging()
    try:
        results = run_supervised(
            model=args.model,
            dataset=args.dataset,
            fractions=args.fractions,
            seeds=args.seeds,
            epochs=args.epochs,
            image_size=args.image_size,
            center_crop=args.center_crop,
            stretch=args.stretch,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_epochs=args.warmup_epochs,
            rotate_degrees=args.rotate_degrees,
            model_kwargs=args.model_kwargs,
            label_scheme=args.label_scheme,
            limit=args.limit,
            output=args.output,
            overwrite=args.overwrite,
            resume=args.resume,
            device=args.device,
            stop_after=args.stop_after,
        )
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as e:
        logger.error("%s", e)
        return 1
    if results is None:
        print("stopped early; continue with --resume")
        return 0
    print(format_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
