#!/usr/bin/env python
"""Find the sources of whole survey images: a catalogue per FITS field.

    tools/find_sources.py --config-file CFG --weights RUN/model_final.pth \\
        --image F.fits [more ...] --output DIR [KEY=VALUE ...]
    tools/find_sources.py --finder pybdsf|classical --image F.fits --output DIR

Writes DIR/<image stem>.fits, .csv, .reg (DS9 ellipses) and .png (the field with the
catalogue drawn). A trained detector runs over the field in overlapping tiles of its
training size, resampled so the beam spans as many pixels as in training (``--no-rescale``
turns that off); ``--deblend`` measures a box holding separate maxima as one source per
maximum (``astrodet.sky.measure.deblend``).

With a model trained on whole physical sources (a config with ``finder = dict(associate=True)``,
the ``rgz_first_*`` configs) the catalogue has one row per physical source (a radio galaxy's
core, jets and lobes together): the columns above plus its box ``x_min, y_min, x_max, y_max``
(0-based pixel edges of the field, the frame of ``x``, ``y``), ``class``, ``class_score`` and
``n_components``; DIR/<stem>_components.fits/.csv lists its components (the classical
finder's, or PyBDSF's with ``--components pybdsf``) with ``component_id`` and the
``source_id`` they belong to (a box mostly inside a larger one is absorbed by it first:
``--absorb-inside`` / ``--absorb-score-ratio``, from the config's finder dict, 0.8 / 0.5 by
default); the .reg file and the picture show the boxes and the
components (``astrodet.sky.physical``). ``--associate`` / ``--no-associate`` override the
config. Under ``torchrun --nproc_per_node N`` process r
takes images r, r+N, ...
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

logger = logging.getLogger("find_sources")


def build_parser() -> argparse.ArgumentParser:
    from astrodet.sky.field import add_beam_argument
    from astrodet.sky.finders.detector import PRECISIONS

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--image", nargs="+", required=True, help="FITS field(s)")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--config-file", help="detector config (with --weights)")
    p.add_argument("--weights", help="the detector's checkpoint, e.g. RUN/model_final.pth")
    p.add_argument(
        "--finder",
        choices=["detector", "pybdsf", "classical"],
        help="finder (default: detector when --config-file is given)",
    )
    add_beam_argument(p)
    p.add_argument(
        "--score-thresh",
        type=float,
        default=None,
        help="detector: min score (default: the config's finder.score_thresh, else 0.5)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="detector: tiles per pass (8)")
    p.add_argument(
        "--min-snr",
        type=float,
        default=None,
        help="detector: leave out sources whose measured S/N is below this (default: the "
        "config's finder.min_snr, else 5, PyBDSF's thresh_pix; 0 keeps every detection)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="detector: the backbone in bfloat16 where the CPU/GPU computes it natively "
        "(auto), or always (bf16), or float32 throughout (fp32)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the detector, or PyBDSF's worker processes (default: the cores "
        "this process may use, shared among the processes of torchrun)",
    )
    p.add_argument(
        "--no-rescale",
        action="store_true",
        help="detector: do not resample fields to the training beam in pixels",
    )
    p.add_argument(
        "--deblend",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="detector: one source per separate maximum in a box (S/N >= 5, a beam apart, "
        "a Rayleigh dip between them); off by default, one source per box",
    )
    p.add_argument(
        "--associate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="detector: physical sources with their components (default: on for a config "
        "whose finder dict says associate=True, models trained on whole sources)",
    )
    p.add_argument(
        "--components",
        choices=["classical", "pybdsf"],
        default="classical",
        help="with --associate: the finder of the components (default: classical)",
    )
    p.add_argument(
        "--absorb-inside",
        type=float,
        default=None,
        metavar="FRACTION",
        help="with --associate: a box with this fraction of its area inside a larger box is "
        "part of that source (default: the config's finder.absorb_inside, else 0.8; 0: off)",
    )
    p.add_argument(
        "--absorb-score-ratio",
        type=float,
        default=None,
        metavar="RATIO",
        help="with --associate: ... when the larger box scores at least RATIO x its own "
        "(default: the config's finder.absorb_score_ratio, else 0.5)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing catalogues")
    p.add_argument("--no-picture", action="store_true", help="skip the PNG")
    p.add_argument("opts", nargs="*", metavar="KEY=VALUE", help="config overrides")
    return p


def build(args, parser):
    from astrodet.sky.finders import build_finder

    name = args.finder or ("detector" if args.config_file else None)
    if name is None:
        parser.error("give --config-file and --weights, or --finder pybdsf|classical")
    if name == "detector":
        if not (args.config_file and args.weights):
            parser.error("the detector needs --config-file and --weights")
        from astrodet.sky.finders.detector import DetectorFinder

        # flags left unset take the config's operating point (its ``finder`` dict)
        given = {"score_thresh": args.score_thresh, "min_snr": args.min_snr}
        return DetectorFinder.from_config(
            args.config_file,
            args.weights,
            overrides=args.opts,
            batch_size=args.batch_size,
            rescale=not args.no_rescale,
            deblend=args.deblend,
            progress=sys.stderr.isatty(),
            num_threads=args.threads,
            precision=args.precision,
            **{k: v for k, v in given.items() if v is not None},
        )
    if args.opts or args.config_file or args.weights:
        parser.error(f"--finder {name} takes no config, weights or KEY=VALUE overrides")
    if name == "pybdsf":
        from astrodet.sky.finders.detector import default_threads

        return build_finder(name, ncores=args.threads or default_threads())
    return build_finder(name)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    # --image takes every word up to the next option: KEY=VALUE overrides after it belong to opts
    moved = [a for a in args.image if "=" in a and not Path(a).exists()]
    args.image = [a for a in args.image if a not in moved]
    args.opts = list(args.opts) + moved
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    images = [Path(p) for p in args.image][rank::world]
    out = Path(args.output)
    from astrodet.sky import Beam, CatalogueError, FieldError, open_field, write_catalogue
    from astrodet.visualize import save_field_picture

    name = args.finder or ("detector" if args.config_file else None)
    associate = bool(args.associate)
    if args.associate is None and name == "detector" and args.config_file:
        from astrodet.sky.physical import associates_by_default

        if Path(args.config_file).is_file():
            associate = associates_by_default(args.config_file, args.opts)
    if args.associate and name != "detector":
        parser.error("--associate needs a detector (--config-file and --weights)")
    suffixes = [".fits", ".csv", ".reg", ".png"]
    if associate:
        suffixes += ["_components.fits", "_components.csv"]
    try:
        beam = Beam.from_args(args.beam)
        for path in images:
            if not path.is_file():
                raise FileNotFoundError(f"FITS image {path} not found")
            stem = out / path.name.removesuffix(".gz").rsplit(".", 1)[0]
            targets = [stem.with_name(stem.name + s) for s in suffixes]
            existing = [str(t) for t in targets if t.exists()]
            if existing and not args.overwrite:
                raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it")
        finder = build(args, parser)
        out.mkdir(parents=True, exist_ok=True)
        if associate:
            from astrodet.sky.physical import class_names

            classes = class_names(args.config_file, args.opts)
        for path in images:
            stem = out / path.name.removesuffix(".gz").rsplit(".", 1)[0]
            if associate:
                _physical(args, finder, path, stem, beam=beam, classes=classes)
                continue
            with open_field(path, beam=beam) as field:
                start = time.perf_counter()
                table = finder.find(field)
                seconds = time.perf_counter() - start
                mp = field.shape[0] * field.shape[1] / 1e6
                table.meta["SECONDS"] = round(seconds, 3)
                write_catalogue(table, stem, overwrite=args.overwrite)
                if not args.no_picture:
                    save_field_picture(field, table, stem.with_name(stem.name + ".png"))
            logger.info(
                "%s: %d sources in %.2f s (%.2f s/megapixel) -> %s.{fits,csv,reg,png}",
                path,
                len(table),
                seconds,
                seconds / max(mp, 1e-9),
                stem,
            )
    except (FileNotFoundError, FileExistsError, FieldError, CatalogueError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    return 0


def _physical(args, finder, path: Path, stem: Path, *, beam, classes) -> None:
    """Physical sources and their components of one field, written beside each other."""
    from astrodet.sky import open_field
    from astrodet.sky.physical import absorb_setting, find_physical_sources, write_physical
    from astrodet.visualize import save_field_picture

    absorb = absorb_setting(
        getattr(finder, "operating_point", None),
        inside=args.absorb_inside,
        score_ratio=args.absorb_score_ratio,
    )
    with open_field(path, beam=beam) as field:
        start = time.perf_counter()
        sources, components = find_physical_sources(
            finder, field, classes=classes, components=args.components, absorb=absorb
        )
        seconds = time.perf_counter() - start
        sources.meta["SECONDS"] = round(seconds, 3)
        write_physical(sources, components, stem, overwrite=args.overwrite)
        if not args.no_picture:
            save_field_picture(
                field,
                components,
                stem.with_name(stem.name + ".png"),
                truth=sources,
                name="components",
                truth_name="physical sources",
            )
    logger.info(
        "%s: %d physical sources, %d components in %.2f s -> %s.{fits,csv,reg,png} and "
        "%s_components.{fits,csv}",
        path,
        len(sources),
        len(components),
        seconds,
        stem,
        stem,
    )


if __name__ == "__main__":
    sys.exit(main())
