#!/usr/bin/env python
"""Score a source catalogue against a reference one (e.g. PyBDSF's) by one-to-one cross-match.

    python tools/compare_catalogues.py --reference REF --catalog CAT --output DIR
        [--radius-arcsec R | --beam MAJ MIN PA] [--image FIELD.fits] [--overwrite]

writes DIR/metrics.json (completeness, reliability, f1, counts, per reference S/N bin, median
position offset and total-flux ratio; with a reference that gives islands, e.g. PyBDSF's
Isl_id, the island-level score: island_completeness, island_reliability...), DIR/matches.csv
and DIR/completeness.png. Matching is optimal one to one within the radius: the most matches,
then the least total separation. Catalogues:
ours (FITS/CSV), PyBDSF .srl/.gaul (FITS or ASCII), Aegean (FITS/CSV/VOTable), ASKAP Selavy
lists and published survey tables (RAJ2000/DEJ2000...). The default radius is half the beam
FWHM (major axis): --beam, else the --image's beam, else the beam in the reference's meta, else
the catalogue's, else half the reference's median minor axis. With a survey-wide reference
list, give --image: only the sources on the field's data are compared.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from astrodet.sky.crossmatch import compare_catalogues
from astrodet.sky.field import Beam, add_beam_argument

#: The island-level score beside the source-level one in the printed summary.
ISLAND_KEYS = (
    "n_islands",
    "n_islands_found",
    "n_catalog_on_islands",
    "island_completeness",
    "island_reliability",
    "island_f1",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Cross-match a source catalogue with a reference catalogue and report "
        "completeness and reliability overall and per S/N bin.",
    )
    p.add_argument(
        "--reference", required=True, help="reference catalogue (PyBDSF, Aegean or ours)"
    )
    p.add_argument("--catalog", required=True, help="catalogue to score")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument(
        "--radius-arcsec",
        type=float,
        default=None,
        help="match radius (default: half the beam FWHM)",
    )
    p.add_argument(
        "--image",
        default=None,
        help="the FITS field the catalogues come from: sources off its data (out of bounds or "
        "on blanked pixels) are left out of both, its beam sets the default radius, and "
        "reference sources without a noise column get an S/N measured on it",
    )
    add_beam_argument(p, help="beam FWHM (arcsec, arcsec, deg) for the default radius")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        metrics = compare_catalogues(
            reference=args.reference,
            catalog=args.catalog,
            output_dir=args.output,
            radius_arcsec=args.radius_arcsec,
            beam=Beam.from_args(args.beam),
            image=args.image,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        parser.error(str(e))
    keys = ("n_reference", "n_catalog", "n_matched", "completeness", "reliability", "f1")
    summary = {k: metrics[k] for k in keys}
    if metrics.get("n_islands") is not None:
        # one detection covering the several reference sources of an island finds it
        summary.update({k: metrics[k] for k in ISLAND_KEYS})
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
