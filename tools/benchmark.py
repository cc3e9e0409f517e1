#!/usr/bin/env python
"""Speed ratios of the toolkit's parts, each measured within one run on one machine.

    python tools/benchmark.py --quick                    # a few minutes on 2 CPU cores
    python tools/benchmark.py --output output/benchmark  # the full run
    python tools/benchmark.py --only eval,probe          # some parts
    python tools/benchmark.py --only gpu                 # the GPU table (make gpu-check)

Every figure compares two ways of doing the same work, timed in alternating rounds
(A B, B A, A B, ...) and summarised by medians, so a busy or noisy machine slows both sides
alike and the ratio holds. Writes ``OUTPUT/benchmark.json`` and ``OUTPUT/benchmark.md``
(the table it prints).

Parts:

* features: images/s of ``probe.features`` extraction (stretch, resize, batching) against
  the bare ``Trunk.features`` forward on the same, already prepared batch; a feature cache
  hit against recomputing.
* probe: ``--protocol fast`` (and ``logistic``) against ``--protocol paper``, 4 label
  fractions x 3 seeds, on 768-d features of 8000 training images (--quick: 1000), as cached
  features are (synthetic Gaussian class clusters here, not a trunk's); time and macro F1
  of each. The paper protocol always trains its 100 epochs: never a scaled estimate.
* detection: seconds per training iteration of Faster R-CNN, frozen against fine-tuned
  backbone, ViTDet-B and R50-FPN at 224 and 512 px (random initialisation); inference
  images/s; trainable parameter counts.
* eval: faster-coco-eval against pycocotools on 1000 images x 30 boxes, and how far their
  AP50 differ.
* gpu: training images/s of ViTDet-B and R50-FPN at 256 and 512 px in fp32 and bf16
  autocast, with the fraction of the wall time the GPU is busy (CUDA events around forward,
  backward and the optimizer step); ``probe.features`` images/s per precision from the
  decoded-image cache; the bare ViT-B/16 trunk; DDP through ``torchrun`` on every GPU there
  is. These are absolute figures on the named GPU; on a machine without one they are
  skipped with the reason. On every machine, the CPU row: the fraction of a training step
  of ``configs/synthetic_vit_small.py`` spent outside forward, backward and the optimizer
  step (data loading, logging, hooks), with the real trainer.

Each part is one module of ``tools/bench/`` (``run`` and ``rows``) behind the table of
runners below. Timings run on a busy machine too, but a CPU shared with other jobs slows multi-threaded
code unevenly; ``--threads 1`` gives steadier figures there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

# the parts live in tools/bench/, beside this script
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import detection, evaluation, features, gpu, probe, sky  # noqa: E402
from bench.common import device_info, release, resolve_device  # noqa: E402
from bench.detection import BACKBONES  # noqa: E402

from astrodet.utils import atomic_write_json, atomic_write_text, prepare_output_dir  # noqa: E402

logger = logging.getLogger("benchmark")

# The parts, in the order they run: name -> its module in tools/bench/, whose
# ``run(settings, device)`` gives the part's benchmark.json entry and ``rows(results)`` its
# rows of the Markdown table.
RUNNERS = {
    "features": features,
    "probe": probe,
    "detection": detection,
    "eval": evaluation,
    "sky": sky,
    "gpu": gpu,
}
SECTIONS = tuple(RUNNERS)

# The gpu part's settings, the same in the full run and --quick (a few minutes on one GPU).
GPU_SETTINGS: dict[str, Any] = dict(
    gpu_backbones=list(gpu.GPU_BACKBONES),
    gpu_sizes=[256, 512],
    gpu_batch=16,  # images per step at 256 px, scaled by the area at 512 px
    gpu_warmup=3,
    gpu_steps=5,
    gpu_feature_images=4096,
    gpu_feature_batch=256,
    gpu_ddp_steps=10,
    step_iters=10,
    step_warmup=2,
)

# Settings of the full run and of --quick; every one can be set on the command line.
PRESETS: dict[str, dict[str, Any]] = {
    "full": dict(
        repeats=3,
        feature_model="dino",
        feature_images=128,
        feature_batch_size=32,
        probe_train=8000,
        probe_test=2000,
        det_sizes=[224, 512],
        det_batch=2,
        det_warmup=1,
        det_iters=3,
        eval_images=1000,
        eval_boxes=30,
        **GPU_SETTINGS,
    ),
    "quick": dict(
        repeats=3,
        feature_model="resnet18",
        feature_images=32,
        feature_batch_size=16,
        # the paper protocol at its 100 epochs on fewer vectors (as long as 4000 x 20 epochs)
        probe_train=1000,
        probe_test=1000,
        det_sizes=[224],
        det_batch=1,
        # frozen and fine-tuned steps differ by tens of per cent: enough timed steps after
        # the warm-up (lazy allocations, oneDNN kernel choice) for the medians to order them
        det_warmup=2,
        det_iters=8,
        eval_images=1000,
        eval_boxes=30,
        **GPU_SETTINGS,
    ),
}


# ----------------------------------------------------------------------------- report


def format_table(results: dict[str, Any]) -> str:
    """The Markdown table of a ``benchmark.json`` dict."""
    dev = results.get("device", {})
    where = dev.get("gpu") or f"{dev.get('cpu')} ({dev.get('torch_threads')} threads)"
    lines = [
        f"# Benchmark{' (--quick)' if results.get('quick') else ''}",
        "",
        f"{where}, torch {dev.get('torch')}; {results.get('wall_seconds', 0):.0f} s wall. "
        "Each figure is a ratio of medians of interleaved timings within this run.",
        "",
        "| part | figure | value | detail |",
        "|---|---|---|---|",
    ]
    for part in RUNNERS.values():
        lines += part.rows(results)
    if results.get("notes"):
        lines += ["", *[f"- {n}" for n in results["notes"]]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI


def _sections(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"--only {value!r}: unknown part(s) {', '.join(bad) or '(none)'}; "
            f"valid: {', '.join(SECTIONS)}"
        )
    return names


def _backbones(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in BACKBONES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"--det-backbones {value!r}: unknown {', '.join(bad) or '(none)'}; "
            f"valid: {', '.join(BACKBONES)}"
        )
    return names


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _json_dict(value: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Speed ratios of the toolkit's parts (features, probe, detection, COCO "
        "evaluation), each measured within one run on one machine. --quick takes about 3-4 "
        "minutes on 2 CPU cores; the full run about 30-60 minutes on 2 CPU cores (mostly "
        "ViT-B and ResNet-50 detectors at 512 px and ViT-B features), a few minutes on a GPU.",
        epilog="Defaults written A/B are A for the full run and B for --quick.",
    )
    p.add_argument("--output", default="output/benchmark", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller settings: ResNet-18 features on 32 images, 1000 probe vectors (the paper "
        "protocol still at its 100 epochs), detectors at 224 px only with batch 1 "
        "(defaults below: full/quick)",
    )
    p.add_argument(
        "--only",
        type=_sections,
        default=list(SECTIONS),
        help=f"comma-separated parts to run (default all: {','.join(SECTIONS)})",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    p.add_argument("--repeats", type=_positive, default=None, help="timed rounds (3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch CPU threads (default: torch's choice, usually one per core)",
    )
    g = p.add_argument_group("features")
    g.add_argument(
        "--feature-model", default=None, help="zoo trunk, random init (full dino, quick resnet18)"
    )
    g.add_argument("--feature-images", type=_positive, default=None, help="images (128/32)")
    g.add_argument("--feature-batch-size", type=_positive, default=None, help="batch (32/16)")
    g.add_argument("--feature-image-size", type=_positive, default=224, help="input px (224)")
    g.add_argument("--feature-model-kwargs", type=_json_dict, default=None, help=argparse.SUPPRESS)
    g = p.add_argument_group("probe")
    g.add_argument("--probe-train", type=_positive, default=None, help="train vectors (8000/1000)")
    g.add_argument("--probe-test", type=_positive, default=None, help="test vectors (2000/1000)")
    g.add_argument(
        "--probe-fractions",
        type=float,
        nargs="+",
        default=[0.1, 0.3, 0.5, 1.0],
        help="label fractions (0.1 0.3 0.5 1.0)",
    )
    g.add_argument("--probe-seeds", type=_positive, default=3, help="seeds per fraction (3)")
    g = p.add_argument_group("detection")
    g.add_argument(
        "--det-backbones",
        type=_backbones,
        default=list(BACKBONES),
        help=f"comma-separated ({','.join(BACKBONES)})",
    )
    g.add_argument(
        "--det-sizes", type=_positive, nargs="+", default=None, help="input px (224 512/224)"
    )
    g.add_argument("--det-batch", type=_positive, default=None, help="images per iteration (2/1)")
    g.add_argument(
        "--det-warmup",
        type=int,
        default=None,
        help="untimed iterations at least, more until steady (1/2)",
    )
    g.add_argument("--det-iters", type=_positive, default=None, help="timed iterations (3/8)")
    g.add_argument("--det-tiny", action="store_true", help=argparse.SUPPRESS)
    g = p.add_argument_group("eval")
    g.add_argument("--eval-images", type=_positive, default=None, help="images (1000)")
    g.add_argument("--eval-boxes", type=_positive, default=None, help="boxes per image (30)")
    g = p.add_argument_group("gpu")
    g.add_argument(
        "--gpu-sizes", type=_positive, nargs="+", default=None, help="training input px (256 512)"
    )
    g.add_argument(
        "--gpu-batch", type=_positive, default=None, help="training images per step at 256 px (16)"
    )
    g.add_argument("--gpu-steps", type=_positive, default=None, help="steps per timed round (5)")
    g.add_argument("--gpu-warmup", type=int, default=None, help="untimed steps first (3)")
    g.add_argument(
        "--gpu-feature-images", type=_positive, default=None, help="probe feature images (4096)"
    )
    g.add_argument(
        "--gpu-feature-batch", type=_positive, default=None, help="probe feature batch (256)"
    )
    g.add_argument("--gpu-ddp-steps", type=_positive, default=None, help="DDP timed steps (10)")
    g.add_argument(
        "--step-iters",
        type=_positive,
        default=None,
        help="CPU row: timed training iterations (10)",
    )
    g.add_argument("--step-warmup", type=int, default=None, help="CPU row: untimed first (2)")
    g.add_argument("--step-config", default=None, help=argparse.SUPPRESS)
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    preset = PRESETS["quick" if args.quick else "full"]
    out = {
        k: getattr(args, k, None) if getattr(args, k, None) is not None else v
        for k, v in preset.items()
    }
    out.update(
        feature_image_size=args.feature_image_size,
        feature_model_kwargs=args.feature_model_kwargs,
        probe_fractions=args.probe_fractions,
        probe_seeds=args.probe_seeds,
        det_backbones=args.det_backbones,
        det_tiny=args.det_tiny,
        step_config=args.step_config,
        only=args.only,
        seed=args.seed,
    )
    for f in out["probe_fractions"]:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"--probe-fractions: {f} is not in (0, 1]")
    return out


def _notes(s: dict[str, Any], results: dict[str, Any], quick: bool) -> list[str]:
    notes = []
    if quick:
        notes.append(
            "--quick: features with "
            f"{s['feature_model']} on {s['feature_images']} images; probe on {s['probe_train']} "
            f"training vectors (not 8000), the paper protocol at its 100 epochs; "
            f"detection at {'/'.join(map(str, s['det_sizes']))} px, batch {s['det_batch']}, "
            f"{s['det_warmup']} warm-up + {s['det_iters']} timed iterations. Ratios differ "
            "from the full run's."
        )
    if "probe" in results:
        notes.append(
            "probe features are synthetic (Gaussian class clusters in 768-d, not a trunk's)."
        )
    if "detection" in results:
        notes.append(
            "detectors are randomly initialised (weights none); the time per iteration does "
            "not depend on the weights."
        )
    if "features" in results:
        notes.append("all trunks are randomly initialised (weights none).")
    g = results.get("gpu") or {}
    if "skipped" in g.get("training", {}):
        notes.append(f"GPU rows not measured here: {g['training']['skipped']}.")
    elif g:
        notes.append(
            f"GPU rows measured on {g.get('device_name')} ({g.get('gpus')} GPU(s)): absolute "
            "figures on that GPU, random initialisation."
        )
    return notes


def run_benchmark(
    *, settings: dict[str, Any], output: Path, device: torch.device, quick: bool
) -> dict[str, Any]:
    """Run the chosen parts, writing ``benchmark.json`` after each.

    Args:
        settings: resolved settings (:func:`_settings`).
        output: the (prepared) output folder.
        device: where models run.
        quick: whether these are the --quick settings (recorded).
    """
    s = settings
    start = time.perf_counter()
    results: dict[str, Any] = {
        "version": 1,
        "quick": quick,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(device),
        "settings": s,
    }

    def save():
        results["wall_seconds"] = time.perf_counter() - start
        results["notes"] = _notes(s, results, quick)
        atomic_write_json(output / "benchmark.json", results)

    parts = [(name, RUNNERS[name]) for name in SECTIONS if name in s["only"]]
    for name, part in tqdm(parts, desc="benchmark", unit="part"):
        logger.info("[%s] start", name)
        t0 = time.perf_counter()
        results[name] = part.run(s, device)
        release(device)
        logger.info("[%s] done in %.1f s", name, time.perf_counter() - t0)
        save()
    with contextlib.suppress(AttributeError, OSError):
        results["device"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    save()
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting


def _run(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        device = resolve_device(args.device)
        output = prepare_output_dir(args.output, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as e:
        logger.error("%s", e)
        return 1
    results = run_benchmark(settings=settings, output=output, device=device, quick=args.quick)
    table = format_table(results)
    atomic_write_text(output / "benchmark.md", table)
    print(table)
    logger.info("wrote %s and %s", output / "benchmark.json", output / "benchmark.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
