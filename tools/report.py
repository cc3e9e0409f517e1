#!/usr/bin/env python
"""Tables and figures from run folders: every detection run (``config.yaml`` +
``metrics.json``) under the given folders into ``OUTPUT/runs.csv``, mAP@50 per backbone x
frozen/fine-tuned x label fraction (mean, min/max over seeds) in ``OUTPUT/summary.md``, the
paper's Figure 4 (``OUTPUT/figure4.png``) and, from probe ``results.json`` files found under
the folders, the paper's Figure 3 as ``probe.report`` draws it (``OUTPUT/probes/``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from astrodet.evaluation.runs import (
    collect_runs,
    plot_figure4,
    summarize,
    summary_markdown,
    write_runs_csv,
)
from astrodet.utils import atomic_write_text, prepare_output_dir


def _probe_results(roots: list[str]) -> list[Path]:
    """``results.json`` files that hold probe results (``dataset``, ``protocol``, ``runs``)."""
    found = []
    for root in map(Path, roots):
        for path in sorted(root.rglob("results.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(data, dict) and {"dataset", "protocol", "runs"} <= set(data):
                found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  report.py output/sweeps/mgcls output/sweeps/rgz --output output/reports/paper",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders holding run folders")
    parser.add_argument("--output", required=True, metavar="OUT", help="the report folder")
    parser.add_argument(
        "--fraction",
        type=float,
        default=None,
        help="label fraction drawn in Figure 4 (default: each data set's largest)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing report folder"
    )
    args = parser.parse_args(argv)
    try:
        rows, skipped = collect_runs(args.dirs)
        probes = _probe_results(args.dirs)
        if not rows and not probes:
            raise FileNotFoundError(
                f"no run folders with metrics.json and no probe results.json under {', '.join(args.dirs)}"
            )
        out = prepare_output_dir(args.output, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")

    for run, why in skipped.items():
        print(f"skipped {run}: {why}")
    if rows:
        incomplete = [r["run"] for r in rows if not r["complete"]]
        summary = summarize(rows)
        table = summary_markdown(summary)
        print(f"{len(rows)} runs ({len(incomplete)} not finished, left out of the summary), "
              f"{len(skipped)} folders skipped")  # fmt: skip
        print(f"runs: {write_runs_csv(rows, out / 'runs.csv')}")
        if summary:
            atomic_write_text(out / "summary.md", table)
            print(table)
            print(f"summary: {out / 'summary.md'}")
            print(f"figure 4: {plot_figure4(summary, out / 'figure4.png', fraction=args.fraction)}")
    if probes:
        from probe.report import make_report

        made = make_report(probes, output=out / "probes")
        print(f"figure 3 from {len(probes)} probe results: {made['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
