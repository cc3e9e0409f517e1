#!/usr/bin/env python
"""Download GalaxyMNIST into $ASTRODET_DATASETS/gmnist/GalaxyMNIST/raw (network needed).

python datasets/prepare_gmnist.py [--root DIR] [--md5-train MD5] [--md5-test MD5]
"""

from __future__ import annotations

import argparse
import logging
import sys

from astrodet.data.gmnist import download_gmnist, load_gmnist


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="default: $ASTRODET_DATASETS/gmnist")
    p.add_argument("--md5-train", default=None, help="expected md5 of train_dataset.hdf5")
    p.add_argument("--md5-test", default=None, help="expected md5 of test_dataset.hdf5")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        paths = download_gmnist(
            root=args.root, md5={"train": args.md5_train, "test": args.md5_test}
        )
        for split in ("train", "test"):
            print(f"{split}: {len(load_gmnist(split, root=args.root))} images")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
