"""Label-fraction sweeps of linear (or kNN) probes on frozen features.

``python -m probe.linear --model dino msn resnet50 --dataset gmnist`` trains a classifier
on cached features of 10/30/50/100 % of the training labels (seeded, stratified, every class
present) for several seeds, predicts the fixed test split and writes
``output/probe/<dataset>/results.json`` (see :mod:`probe.results`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from astrodet.utils import prepare_output_dir

from .datasets import AUTO, check_dataset, is_unbalanced, load_split, resolve_stretch
from .features import add_feature_args, dataset_arg, extract_splits, feature_options, setup_logging
from .heads import HEADS, PROTOCOLS, fit_predict, paper_epochs
from .results import load_results, make_run, write_results

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_FRACTIONS", "fraction_indices", "main", "resolve_seeds", "run_linear_probe"]

DEFAULT_FRACTIONS = (0.1, 0.3, 0.5, 1.0)


def resolve_seeds(seeds) -> list[int]:
    """An int N means seeds ``0..N-1``; a sequence is used as given (one value: a count)."""
    if isinstance(seeds, int):
        values = list(range(seeds))
    else:
        seeds = [int(s) for s in seeds]
        values = list(range(seeds[0])) if len(seeds) == 1 else seeds
    if not values:
        raise ValueError("at least one seed is needed")
    return values


def fraction_indices(
    labels: np.ndarray, fraction: float, seed: int, class_names: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Seeded, stratified training subset with every class present.

    Returns:
        (indices, names of the classes the fraction would have left empty and that were
        raised to one example). A raise is logged as a warning by
        :func:`astrodet.data.label_fraction_indices`.
    """
    from astrodet.data import label_fraction_indices

    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    present = np.flatnonzero(np.bincount(labels))
    idx, raised = label_fraction_indices(
        labels, fraction, seed, stratify=True, class_names=class_names, return_raised=True
    )
    missing = set(present.tolist()) - set(labels[idx].tolist())
    if missing:
        raise RuntimeError(f"label fraction subset lacks classes {sorted(missing)}")
    return idx, raised


def run_linear_probe(
    *,
    models: list[str],
    dataset: str,
    fractions=DEFAULT_FRACTIONS,
    seeds=3,
    protocol: str = "fast",
    head: str = "linear",
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    epochs: int | None = None,
    **feature_kwargs,
) -> dict:
    """Sweep models x label fractions x seeds of a probe on frozen features.

    Args:
        models: zoo model names.
        dataset: probe data set name, or a folder of class subfolders.
        fractions: label fractions of the training split, each in (0, 1].
        seeds: number of seeds (0..N-1) or the list of seeds.
        protocol: ``"fast"`` (closed-form shrinkage LDA), ``"logistic"`` (L-BFGS logistic
            regression) or ``"paper"`` (Adam, batch 16).
        head: ``"linear"`` or ``"knn"``.
        output: output folder (default ``output/probe/<dataset>``).
        overwrite: replace an existing output folder.
        resume: keep an existing folder and skip the runs it already holds.
        epochs: epochs of the paper protocol (default 100, 200 for RGZ sets).
        **feature_kwargs: passed to :func:`probe.features.extract_splits` (weights,
            image_size, stretch, model_kwargs, label_scheme, limit, device, cache_dir, ...).

    Returns:
        the results dict written to ``OUTPUT/results.json``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    dataset = check_dataset(dataset)
    fractions = [float(f) for f in fractions]
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {f}")
    seeds = resolve_seeds(seeds)
    output = Path(output or Path("output") / "probe" / dataset)
    prepare_output_dir(output, overwrite=overwrite, resume=resume)
    epochs = epochs or paper_epochs(dataset)
    label_scheme = feature_kwargs.get("label_scheme")
    class_names = load_split(dataset, "test", label_scheme=label_scheme).class_names
    settings = {
        "fractions": fractions,
        "seeds": seeds,
        "epochs": epochs if protocol == "paper" and head == "linear" else None,
        # where and how fast features are computed is no setting of the results
        **{
            k: v for k, v in feature_kwargs.items() if k not in ("device", "num_workers", "compile")
        },
        # the stretch applied, not "auto"
        "stretch": resolve_stretch(dataset, feature_kwargs.get("stretch", AUTO)),
    }
    runs: list[dict] = []
    if resume and (output / "results.json").exists():
        previous = load_results(output)
        if (previous["dataset"], previous["protocol"], previous.get("head")) != (
            dataset,
            protocol,
            head,
        ):
            raise ValueError(
                f"{output}/results.json holds {previous['dataset']}/{previous['protocol']}/"
                f"{previous.get('head')}, not {dataset}/{protocol}/{head}; use another --output"
            )
        runs = [r for r in previous["runs"] if (output / r["predictions"]).is_file()]
        logger.info("resuming %s: %d runs done", output, len(runs))
    done = {(r["model"], float(r["fraction"]), int(r["seed"])) for r in runs}

    def save():
        return write_results(
            output,
            dataset=dataset,
            protocol=protocol,
            head=head,
            class_names=class_names,
            runs=runs,
            settings=settings,
        )

    device = feature_kwargs.get("device", AUTO)
    for model in models:
        todo = [(f, s) for f in fractions for s in seeds if (model, f, s) not in done]
        if not todo:
            continue
        feats = extract_splits(model=model, dataset=dataset, **feature_kwargs)
        train_x, train_y = feats["train"]
        test_x, test_y = feats["test"]
        balanced = is_unbalanced(train_y, len(class_names))
        for fraction, seed in todo:
            idx, raised = fraction_indices(train_y, fraction, seed, class_names)
            t0 = time.perf_counter()
            pred, info = fit_predict(
                train_x[idx],
                train_y[idx],
                test_x,
                num_classes=len(class_names),
                head=head,
                protocol=protocol,
                balanced=balanced,
                seed=seed,
                epochs=epochs,
                device=device,
            )
            run = make_run(
                output=output,
                model=model,
                fraction=fraction,
                seed=seed,
                n_train=len(idx),
                y_true=test_y,
                y_pred=pred,
                num_classes=len(class_names),
                fit_seconds=round(time.perf_counter() - t0, 4),
                class_weighted=balanced,
                raised_classes=raised,
                head_info=info,
            )
            runs.append(run)
            logger.info(
                "%s fraction %g seed %d (n=%d): macro F1 %.4f accuracy %.4f",
                model,
                fraction,
                seed,
                len(idx),
                run["macro_f1"],
                run["accuracy"],
            )
        save()
    path = save()
    logger.info("wrote %s", path)
    return load_results(path)


def format_summary(results: dict) -> str:
    """A plain-text table of mean [min, max] macro F1 per model and fraction."""
    lines = [f"{results['dataset']} ({results['protocol']}, {results.get('head')}): macro F1"]
    for s in results["summary"]:
        m = s["macro_f1"]
        lines.append(
            f"  {s['model']:<12} fraction {s['fraction']:<5g} n_train {s['n_train']:<6d} "
            f"{m['mean']:.4f} [{m['min']:.4f}, {m['max']:.4f}]"
        )
    return "\n".join(lines)


def _fraction(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fraction {value!r} is not a number") from None
    if not 0.0 < f <= 1.0:
        raise argparse.ArgumentTypeError(f"fraction must be in (0, 1], got {value}")
    return f


def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    """``--fractions``, ``--seeds``, ``--output``, ``--overwrite``, ``--resume``."""
    parser.add_argument(
        "--fractions",
        nargs="+",
        type=_fraction,
        default=list(DEFAULT_FRACTIONS),
        help="label fractions of the training split (default 0.1 0.3 0.5 1.0)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[3],
        help="one number N: seeds 0..N-1 (default 3); several: those seeds",
    )
    parser.add_argument(
        "--output", default=None, help="output folder (default output/probe/<dataset>)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    group.add_argument("--resume", action="store_true", help="continue an existing output folder")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m probe.linear",
        description="Linear (or kNN) probes on frozen features at several label fractions.",
    )
    add_feature_args(parser, multi_model=True)
    dataset_arg(parser, default="gmnist")
    add_sweep_args(parser)
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="fast",
        help="fast (default): shrinkage LDA on standardised features in closed form, the "
        "shrinkage chosen on a validation split; logistic: L-BFGS multinomial logistic "
        "regression, C chosen on a validation split; paper: one linear layer, Adam lr 5e-4, "
        "batch 16, 100 epochs (RGZ 200)",
    )
    parser.add_argument("--head", choices=HEADS, default="linear", help="linear or knn (k=20)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="paper protocol epochs (default 100; RGZ 200)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    try:
        results = run_linear_probe(
            models=args.model,
            dataset=args.dataset,
            fractions=args.fractions,
            seeds=args.seeds,
            protocol=args.protocol,
            head=args.head,
            output=args.output,
            overwrite=args.overwrite,
            resume=args.resume,
            epochs=args.epochs,
            **feature_options(args),
        )
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as e:
        logger.error("%s", e)
        return 1
    print(format_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
