#!/usr/bin/env python
"""The classical baseline: a threshold source finder scored by the detectors' COCO evaluator.

    python tools/classical_baseline.py --json-file J --image-root R --output DIR [--nsigma 5]
        [--calibrate-on TRAIN_JSON --calibrate-images TRAIN_DIR]

writes DIR/metrics.json (bbox/AP, bbox/AP50, bbox/AP75, per category, as tools/train_net.py),
DIR/coco_instances_results.json and DIR/finder.json (the settings). A network learns the size
of its boxes from its training labels; with --calibrate-on the finder does too: the box scale
(and, with --calibrate-nsigma, the threshold) maximising AP50 on the training images is used
and written to DIR/calibration.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from astrodet.sky.finders.classical import run_classical_baseline


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Find sources with a classical threshold finder (sigma-clipped rms, islands, "
        "FWHM-ellipse boxes) and score them with the COCO evaluator.",
    )
    p.add_argument("--json-file", required=True, help="COCO json of the images to search")
    p.add_argument("--image-root", required=True, help="folder the json's file names are in")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--nsigma", type=float, default=5.0, help="peak threshold in rms (default 5)")
    p.add_argument(
        "--island-nsigma", type=float, default=3.0, help="island threshold in rms (default 3)"
    )
    p.add_argument("--npixels", type=int, default=5, help="fewest pixels per island (default 5)")
    p.add_argument("--deblend", action="store_true", help="split islands holding several peaks")
    p.add_argument(
        "--min-separation", type=int, default=2, help="smallest peak distance, px (default 2)"
    )
    p.add_argument(
        "--box-scale",
        type=float,
        default=None,
        help="scale of the box about the source (default 1 = the FWHM ellipse's bounding box)",
    )
    p.add_argument(
        "--calibrate-on",
        default=None,
        metavar="TRAIN_JSON",
        help="COCO json of labelled training images: fit the box scale there (AP50 grid search)",
    )
    p.add_argument("--calibrate-images", default=None, help="image folder of --calibrate-on")
    p.add_argument(
        "--calibrate-nsigma",
        type=float,
        nargs="+",
        default=None,
        help="thresholds the calibration also tries (default: --nsigma only)",
    )
    p.add_argument(
        "--calibrate-max-images",
        type=int,
        default=None,
        help="use at most this many training images for the calibration",
    )
    p.add_argument("--max-fwhm", type=float, default=None, help="drop sources wider than this (px)")
    p.add_argument("--category", default=None, help="category (name or id) of the detections")
    p.add_argument(
        "--backend", default="auto", choices=["auto", "pycocotools", "faster"], help="COCO backend"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.calibrate_on is None) != (args.calibrate_images is None):
        parser.error("--calibrate-on and --calibrate-images go together")
    if args.calibrate_on is not None and args.box_scale is not None:
        parser.error("--box-scale and --calibrate-on exclude each other (calibration fits it)")
    if args.calibrate_on is None and args.calibrate_nsigma is not None:
        parser.error("--calibrate-nsigma needs --calibrate-on")
    calibration = {}
    if args.calibrate_on is not None:
        calibration = dict(
            calibrate_on=args.calibrate_on,
            calibrate_images=args.calibrate_images,
            calibrate_nsigmas=args.calibrate_nsigma,
            calibrate_max_images=args.calibrate_max_images,
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        metrics = run_classical_baseline(
            json_file=args.json_file,
            image_root=args.image_root,
            output_dir=args.output,
            overwrite=args.overwrite,
            category=args.category,
            backend=args.backend,
            nsigma=args.nsigma,
            island_nsigma=args.island_nsigma,
            npixels=args.npixels,
            deblend=args.deblend,
            min_separation=args.min_separation,
            max_fwhm=args.max_fwhm,
            **({} if args.calibrate_on else {"box_scale": args.box_scale or 1.0}),
            **calibration,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        parser.error(str(e))
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
