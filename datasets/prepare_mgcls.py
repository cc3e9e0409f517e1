#!/usr/bin/env python
"""Cut MGCLS full-field images into tiles with COCO boxes for their compact sources.

    python datasets/prepare_mgcls.py --image FITS [FITS ...] --catalog CATALOGUE [CATALOGUE ...]
        --out DIR [--size 256] [--stride 128] [--max-nan-fraction F] [--overwrite]
    python datasets/prepare_mgcls.py --image FITS [FITS ...] --catalog pybdsf [--beam MAJ MIN PA]
        --out DIR    # PyBDSF run on each image first (cached), its source list turned into boxes

Writes DIR/annotations.json (COCO), DIR/images/*.npy (float32 raw flux, north up) and
DIR/summary.json. See astrodet.data.mgcls for the conventions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from astrodet.data.mgcls import DEFAULT_COLUMNS, prepare_mgcls
from astrodet.sky.field import add_beam_argument


def _columns(items):
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULT_COLUMNS:
            raise SystemExit(
                f"error: --columns wants KEY=NAME with KEY in {list(DEFAULT_COLUMNS)}, got {item!r}"
            )
        out[key] = value
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", nargs="+", required=True, help="full-field FITS image(s)")
    p.add_argument(
        "--catalog",
        nargs="+",
        required=True,
        help="PyBDSF catalogue(s), one per image: FITS table, CSV or .srl/.gaul text; or the "
        "word pybdsf to run PyBDSF on each image (cached under $ASTRODET_CACHE/pybdsf)",
    )
    add_beam_argument(
        p,
        help="with --catalog pybdsf: restoring beam (arcsec, arcsec, deg) for headers without BMAJ",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=256, help="tile side in pixels (default 256)")
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="pixels between tile corners (default: --size, tiles side by side); smaller "
        "gives overlapping tiles, more training views of each source",
    )
    p.add_argument(
        "--max-nan-fraction",
        type=float,
        default=0.5,
        help="skip tiles with a larger fraction of NaN pixels (default 0.5)",
    )
    p.add_argument("--fill-value", type=float, default=0.0, help="replaces NaN pixels")
    p.add_argument(
        "--columns",
        nargs="*",
        metavar="KEY=NAME",
        help="catalogue column names, e.g. ra=RA dec=DEC maj=Maj min=Min pa=PA (or x=Xposn y=Yposn)",
    )
    p.add_argument("--size-unit", default="deg", choices=["deg", "arcmin", "arcsec"])
    p.add_argument(
        "--max-major-beams",
        type=float,
        default=3.0,
        help="label sources with major axis <= this many beams; <= 0 labels all (default 3)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kwargs = dict(
        out_dir=args.out,
        size=args.size,
        stride=args.stride,
        max_nan_fraction=args.max_nan_fraction,
        fill_value=args.fill_value,
        max_major_beams=args.max_major_beams if args.max_major_beams > 0 else None,
        overwrite=args.overwrite,
    )
    try:
        if args.catalog == ["pybdsf"]:
            from astrodet.sky.labels import label_fields

            summary = label_fields(args.image, beam=args.beam, **kwargs)
        else:
            summary = prepare_mgcls(
                image=args.image,
                catalog=args.catalog,
                columns=_columns(args.columns),
                size_unit=args.size_unit,
                **kwargs,
            )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
