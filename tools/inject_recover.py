#!/usr/bin/env python
"""Score source finders on truth: sources of known flux injected into real fields, and the
inverted fields (the field times -1, where every detection is false).

    tools/inject_recover.py --image F.fits [more ... | FOLDER] --finder pybdsf classical \\
        [detector --config-file CFG --weights RUN/model_final.pth] --n 50 --seeds 3 --output DIR

Each finder runs on the original, the inverted and the injected field (one injection per seed,
from --seed on). Writes DIR/summary.json (every number, pooled over fields and seeds, and per
field), DIR/table.md, DIR/completeness.png (against injected peak S/N, Wilson 68 % error
bars), DIR/flux.png (recovered against injected total flux), DIR/threshold.png (the
detector's completeness against inverted-field detections as its score threshold varies),
and per field DIR/fields/<stem>/<finder>_{original,inverted}.{fits,csv} and
DIR/fields/<stem>/seed<k>/truth.{fits,csv} and <finder>_injected.{fits,csv}. A field that
cannot be read (no beam: give --beam) or a finder failing on one field is counted and
reported; the others go on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger("inject_recover")

FINDERS = ("pybdsf", "classical", "detector")
#: The detector runs once at this score threshold (or the table's, if lower); its curve and
#: table rows are cuts of that one catalogue.
CURVE_LOW = 0.05


def build_parser() -> argparse.ArgumentParser:
    from astrodet.sky.field import add_beam_argument

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--image", nargs="+", required=True, help="FITS field(s) or folder(s) of them")
    p.add_argument(
        "--finder",
        nargs="+",
        choices=FINDERS,
        default=None,
        help="finders to score (default: pybdsf classical, and detector with --config-file)",
    )
    p.add_argument("--config-file", help="detector config (with --weights)")
    p.add_argument("--weights", help="the detector's checkpoint, e.g. RUN/model_final.pth")
    p.add_argument("--n", type=int, default=50, help="sources injected per field (50)")
    p.add_argument("--seed", type=int, default=0, help="first random seed (0)")
    p.add_argument(
        "--seeds", type=int, default=1, help="injections per field, seeds from --seed (1)"
    )
    p.add_argument(
        "--snr-range",
        nargs=2,
        type=float,
        default=(3.0, 100.0),
        metavar=("LOW", "HIGH"),
        help="injected peak S/N, log-uniform (3 100; above 100 adds an open top bin)",
    )
    p.add_argument(
        "--resolved-fraction",
        type=float,
        default=0.3,
        help="share of resolved sources (beam x a 1-3 beam Gaussian) (0.3)",
    )
    p.add_argument(
        "--score-thresh",
        type=float,
        default=None,
        help="detector: the score its table rows are cut at (default: the config's "
        "finder.score_thresh, else 0.5); the curve spans 0.05-0.95",
    )
    p.add_argument(
        "--min-snr",
        type=float,
        default=None,
        help="detector: leave out detections measured below this S/N (default: the config's "
        "finder.min_snr, else 5, as find_sources)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the detector, or PyBDSF's worker processes (default: the cores "
        "this process may use)",
    )
    add_beam_argument(p)
    p.add_argument("--keep-images", action="store_true", help="keep injected/inverted FITS")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("opts", nargs="*", metavar="KEY=VALUE", help="detector config overrides")
    return p


def build_finders(args, parser) -> dict:
    from astrodet.sky.finders import build_finder
    from astrodet.sky.finders.detector import default_threads

    names = args.finder or ["pybdsf", "classical"] + (["detector"] if args.config_file else [])
    names = list(dict.fromkeys(names))
    if "detector" in names and not (args.config_file and args.weights):
        parser.error("the detector needs --config-file and --weights")
    if "detector" not in names and (args.config_file or args.weights or args.opts):
        parser.error("--config-file, --weights and KEY=VALUE overrides are for --finder detector")
    finders = {}
    for name in names:
        if name == "detector":
            from astrodet.sky.finders.detector import DetectorFinder

            given = {} if args.min_snr is None else {"min_snr": args.min_snr}
            finders[name] = DetectorFinder.from_config(
                args.config_file,
                args.weights,
                overrides=args.opts,
                # run low once: the table's rows and the curve cut its catalogues
                score_thresh=CURVE_LOW
                if args.score_thresh is None
                else min(CURVE_LOW, args.score_thresh),
                num_threads=args.threads,
                progress=False,
                **given,
            )
            if args.score_thresh is None:
                args.score_thresh = finders[name].operating_point.get("score_thresh", 0.5)
                finders[name].score_thresh = min(CURVE_LOW, args.score_thresh)
        elif name == "pybdsf":
            finders[name] = build_finder(name, ncores=args.threads or default_threads())
        else:
            finders[name] = build_finder(name)
    return finders


def main(argv=None) -> int:
    from astrodet.sky.recovery import THRESHOLDS, run_injection_recovery

    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    if args.seeds < 1 or args.n < 1:
        parser.error(f"--n and --seeds must be at least 1, got {args.n} and {args.seeds}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    lo, hi = args.snr_range
    if not 0 < lo < hi:
        parser.error(f"--snr-range needs 0 < LOW < HIGH, got {lo} {hi}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # the finders' per-source chatter would drown the progress bar
    logging.getLogger("astrodet.sky").setLevel(logging.WARNING)
    try:
        finders = build_finders(args, parser)
        if args.score_thresh is None:
            args.score_thresh = 0.5
        low = min(CURVE_LOW, args.score_thresh)
        summary = run_injection_recovery(
            images=args.image,
            finders=finders,
            output=args.output,
            n=args.n,
            seeds=range(args.seed, args.seed + args.seeds),
            beam=args.beam,
            snr_range=(lo, hi),
            resolved_fraction=args.resolved_fraction,
            score_thresh={"detector": args.score_thresh} if "detector" in finders else None,
            curves={"detector": [t for t in THRESHOLDS if t >= low - 1e-9]}
            if "detector" in finders
            else None,
            keep_images=args.keep_images,
            overwrite=args.overwrite,
            progress=sys.stderr.isatty(),
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    brief = {
        name: {
            "completeness": {k: v["completeness"] for k, v in f["bins"].items()},
            "n_inverted": f["n_inverted"],
            "false_injected": f["false_injected"],
            "seconds_per_megapixel": f["seconds_per_megapixel"],
            "failed_runs": f["failed_runs"],
        }
        for name, f in summary["finders"].items()
    }
    print(json.dumps(brief, indent=2))
    for e in summary["fields_failed"]:
        print(f"field skipped: {e['field']}: {e['error']}", file=sys.stderr)
    for e in summary["failures"]:
        print(f"{e['finder']} failed on {e['field']} ({e['image']}): {e['error']}", file=sys.stderr)
    if not summary["n_fields"]:
        print(f"{parser.prog}: error: no field could be read", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
