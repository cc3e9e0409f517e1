#!/usr/bin/env python
"""Train and evaluate a Faster R-CNN detector described by a LazyConfig.

Writes into ``train.output_dir``: ``config.yaml`` (the resolved config), ``log.txt``,
``metrics.jsonl`` (training scalars as json lines), TensorBoard events, checkpoints
(``model_XXXXXXX.pth``, ``model_final.pth``, ``last_checkpoint``), ``metrics.json`` (final
``bbox/AP``, ``bbox/AP50``, ``bbox/AP75`` and per-category values) and
``coco_instances_results.json``.
"""

from __future__ import annotations

import sys

from astrodet.config import LazyConfig
from astrodet.engine import (
    CheckpointError,
    build_model,
    check_checkpoint,
    check_output_dir,
    default_argument_parser,
    default_setup,
    do_test,
    do_train,
    launch,
    load_for_eval,
    resolve_device,
    setup_logging,
)


def load_config(args):
    """The config file with the command line's ``KEY=VALUE`` overrides applied."""
    cfg = LazyConfig.load(args.config_file)
    return LazyConfig.apply_overrides(cfg, list(args.opts))


def main(args) -> dict:
    """One process's work: set up the run, then train (and evaluate) or only evaluate."""
    cfg = load_config(args)
    default_setup(cfg, args)
    if args.eval_only:
        model = build_model(cfg, resolve_device(cfg.train.get("device")))
        load_for_eval(cfg, model)
        return do_test(cfg, model)
    return do_train(cfg, resume=args.resume)


def cli(argv: list[str] | None = None) -> int:
    parser = default_argument_parser(__doc__)
    args = parser.parse_intermixed_args(argv)
    setup_logging()
    try:
        # fail on a wrong file, key or checkpoint here, before any worker process starts
        # and before the run folder is written to
        cfg = load_config(args)
        check_output_dir(cfg, args)
        check_checkpoint(cfg, args)
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except (FileNotFoundError, FileExistsError, KeyError, CheckpointError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        parser.exit(2, f"{parser.prog}: error: {message}\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
