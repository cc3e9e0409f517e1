#!/usr/bin/env python
"""Score physical sources against Radio Galaxy Zoo consensus on real FIRST images.

    python tools/score_association.py --output DIR [--predictions RESULTS.json | CATALOGUE_DIR]
        [--name detector] [--data SET_ROOT] [--split test] [--baselines pybdsf classical]
        [--config-file CONFIG] [--score-threshold 0.5] [--absorb-inside 0.8]
        [--absorb-score-ratio 0.5] [--bootstrap 1000] [--seed 0] [--pictures 6] [--overwrite]

writes DIR/association.json, DIR/table.md (mAP@0.5 over the six RGZ classes and per class
with counts and 95 % bootstrap intervals; association accuracy for 1C and 2C/3C sources;
split, merged and missed counts) and DIR/examples.png. The set is ``rgz_first_det``
(built under ``$ASTRODET_DATASETS`` on first use from ``$ASTRODET_REAL_DATA``).
Predictions: COCO results json on the set's images, or a folder of ``tools/find_sources.py``
catalogues of ``SET_ROOT/fields/<split>/*.fits`` (``x_min, y_min, x_max, y_max, class,
class_score``). PyBDSF's and the classical finder's islands are scored in the same table
(``--baselines`` with no name: none). The detector's physical sources are its boxes at or
above ``--score-threshold`` less those absorbed by a larger box (``--absorb-inside``,
``--absorb-score-ratio``), as ``tools/find_sources.py --associate`` keeps them; with
``--config-file`` the three come from the config's ``finder`` dict unless given.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from astrodet.data.rgz_first import build_rgz_first, rgz_first_root
from astrodet.sky.consensus import BASELINES, score_association
from astrodet.sky.physical import absorb_setting, finder_settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Score predicted physical sources, PyBDSF islands and the classical "
        "finder's islands against Radio Galaxy Zoo consensus (mAP@0.5, association accuracy).",
    )
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument(
        "--predictions",
        default=None,
        help="COCO results json, or a folder of per-image catalogues (<image stem>.csv/.fits)",
    )
    p.add_argument("--name", default="detector", help="what the predictions are called")
    p.add_argument(
        "--data",
        default=None,
        help="root of the rgz_first_det set (default: $ASTRODET_DATASETS/rgz_first_det, "
        "built there when absent)",
    )
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument(
        "--baselines",
        nargs="*",
        default=list(BASELINES),
        choices=BASELINES,
        help="finders scored beside the predictions (none: --baselines with no name)",
    )
    p.add_argument(
        "--config-file",
        default=None,
        help="the model's config: its finder dict gives the defaults of the three below",
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="predictions below this score are not physical sources (association only; "
        "default: the config's finder.score_thresh, else 0.5)",
    )
    p.add_argument(
        "--absorb-inside",
        type=float,
        default=None,
        metavar="FRACTION",
        help="a box with this fraction of its area inside a larger box is part of that source "
        "(association only; default: the config's finder.absorb_inside, else 0.8; 0: off)",
    )
    p.add_argument(
        "--absorb-score-ratio",
        type=float,
        default=None,
        metavar="RATIO",
        help="... when the larger box scores at least RATIO x its own (default: the config's "
        "finder.absorb_score_ratio, else 0.5)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--pictures", type=int, default=6, help="test images drawn (0: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        point = finder_settings(args.config_file) if args.config_file else {}
        if args.score_threshold is None:
            args.score_threshold = float(point.get("score_thresh", 0.5))
        if args.bootstrap < 0 or not 0.0 <= args.score_threshold <= 1.0:
            parser.error("--bootstrap must be >= 0 and --score-threshold in [0, 1]")
        absorb = absorb_setting(
            point, inside=args.absorb_inside, score_ratio=args.absorb_score_ratio
        )
        root = Path(args.data) if args.data else build_rgz_first(rgz_first_root())
        result = score_association(
            json_file=root / args.split / "annotations.json",
            output_dir=args.output,
            predictions=args.predictions,
            name=args.name,
            baselines=tuple(args.baselines),
            score_threshold=args.score_threshold,
            absorb=absorb,
            n_boot=args.bootstrap,
            seed=args.seed,
            n_pictures=args.pictures,
            overwrite=args.overwrite,
            progress=True,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        parser.error(str(e))
    print((Path(args.output) / "table.md").read_text())
    return 0 if result["methods"] else 1


if __name__ == "__main__":
    sys.exit(main())
