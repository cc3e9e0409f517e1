"""``python -m astrodet.zoo`` (``astrodet-zoo``): list the zoo and show where weights come from."""

from __future__ import annotations

import argparse
import logging
import sys

from . import get_model_info, list_models
from .registry import format_table
from .weights import WEIGHTS_ENV, local_checkpoint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m astrodet.zoo",
        description="The foundation-model zoo: trunks, their preprocessing and weights.",
        epilog=(
            f"models: {', '.join(list_models())}, or timm:<any timm model name>. "
            f"Official checkpoints are looked up in ${WEIGHTS_ENV}, then the hub."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="{list,info}")
    sub.add_parser("list", help="print the table of models")
    info = sub.add_parser("info", help="print every field of one model and its local checkpoint")
    info.add_argument("name", help="a zoo name or timm:<name>")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in (None, "list"):
        print(format_table())
        return 0
    try:
        info = get_model_info(args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for field, value in vars(info).items():
        print(f"{field:12s} {value}")
    local = local_checkpoint(info)
    print(f"{'local file':12s} {local if local else f'not found in ${WEIGHTS_ENV}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
