#!/usr/bin/env python
"""Draw predictions beside the ground truth for a few test images.

    tools/visualize_predictions.py --run OUTPUT_DIR [--n 8] [--score-threshold 0.5] [--out DIR]
    tools/visualize_predictions.py --json-file J --image-root R --predictions P --out DIR

With --run the test set comes from the run's config.yaml (dataloader.test.dataset.json_file and
image_root) and the predictions from its coco_instances_results.json; pictures go to
OUTPUT_DIR/vis unless --out is given.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from astrodet.visualize import visualize_predictions

logger = logging.getLogger("visualize_predictions")


def _load_config(path: Path):
    try:
        from astrodet.config import LazyConfig
    except ImportError:
        from omegaconf import OmegaConf

        return OmegaConf.load(path)
    return LazyConfig.load(str(path))


def _from_run(run: Path) -> dict:
    """The test json, image root, stretch and predictions of a train_net.py output folder."""
    from omegaconf import OmegaConf

    config = run / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: is {run} a train_net.py output folder?")
    cfg = _load_config(config)
    test = OmegaConf.select(cfg, "dataloader.test", default=None)
    json_file = OmegaConf.select(cfg, "dataloader.test.dataset.json_file", default=None)
    image_root = OmegaConf.select(cfg, "dataloader.test.dataset.image_root", default=None)
    stretch = OmegaConf.select(cfg, "dataloader.test.stretch", default="auto") if test else "auto"
    return {
        "json_file": json_file,
        "image_root": image_root,
        "stretch": stretch,
        "predictions": run / "coco_instances_results.json",
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Draw predictions next to the ground truth (PNGs).")
    p.add_argument("--run", help="a train_net.py output folder (config.yaml + results json)")
    p.add_argument("--json-file", help="COCO json of the test set (overrides the run's)")
    p.add_argument("--image-root", help="folder of the test images (overrides the run's)")
    p.add_argument("--predictions", help="COCO results json (overrides the run's)")
    p.add_argument("--out", help="output folder (default: RUN/vis)")
    p.add_argument("--n", type=int, default=8, help="how many images (default 8)")
    p.add_argument("--score-threshold", type=float, default=0.5, help="(default 0.5)")
    p.add_argument(
        "--stretch", default=None, help="stretch name or 'none'; default: the run's or auto"
    )
    p.add_argument("--scale", type=float, default=None, help="enlargement (default: auto)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        found = _from_run(Path(args.run)) if args.run else {"stretch": "auto"}
        for key in ("json_file", "image_root", "predictions"):
            if getattr(args, key) is not None:
                found[key] = getattr(args, key)
        missing = [k for k in ("json_file", "image_root", "predictions") if not found.get(k)]
        if missing:
            # a config whose test set is loaded by name has no files to read
            where = (
                f"{args.run}/config.yaml names no dataloader.test.dataset files; "
                if args.run
                else ""
            )
            parser.error(
                f"{where}give --run, or all of --json-file, --image-root and --predictions "
                f"(missing: {', '.join('--' + m.replace('_', '-') for m in missing)})"
            )
        if args.out is None and not args.run:
            parser.error("--out is needed without --run")
        out = Path(args.out) if args.out else Path(args.run) / "vis"
        stretch = found["stretch"] if args.stretch is None else args.stretch
        if isinstance(stretch, str) and stretch.lower() == "none":
            stretch = None
        paths = visualize_predictions(
            json_file=found["json_file"],
            image_root=found["image_root"],
            predictions=found["predictions"],
            out_dir=out,
            n=args.n,
            score_threshold=args.score_threshold,
            stretch=stretch,
            scale=args.scale,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        logger.error("%s", e)
        return 1
    logger.info("wrote %d pictures to %s", len(paths), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
