#!/usr/bin/env python
"""Convert Radio Galaxy Zoo annotations (COCO json or Pascal VOC XML folder) to COCO with
the six classes 1C_1P, 1C_2P, 1C_3P, 2C_2P, 2C_3P, 3C_3P.

    python datasets/prepare_rgz.py --annotations JSON_OR_VOC_DIR --images DIR --out DIR
        [--overwrite]

Writes DIR/annotations.json, DIR/images/ (copies) and DIR/summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from astrodet.data.rgz import prepare_rgz


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotations", required=True, help="COCO json file or VOC XML folder")
    p.add_argument("--images", required=True, help="folder holding the images")
    p.add_argument("--out", required=True, help="output folder, e.g. datasets/rgz/train")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = prepare_rgz(
            annotations=args.annotations,
            images=args.images,
            out_dir=args.out,
            overwrite=args.overwrite,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
