#!/usr/bin/env python
"""The whole toolkit on the simulated sky, offline, in a few minutes: ``make demo``.

Generates the simulated radio sky and galaxies, trains a small detector (fine-tuned and
frozen), scores it beside the classical source finder, draws predictions next to the
ground truth, runs the linear-probe sweep and the supervised baseline on the simulated
galaxies (and on the real FIRST radio galaxies where ``$ASTRODET_REAL_DATA`` has them),
draws the UMAP grid and the F1-versus-fraction figure, and writes ``OUTPUT/report.md``
linking every picture and table.

Each step is the command a user would type; the demo prints it before running it.
Without weights (offline, no ``$ASTRODET_WEIGHTS``) the foundation models are named
random-init trunks and the report says so; ``--models dino msn resnet50`` with weights
available runs the real ones through the same commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astrodet.utils import atomic_write_text, prepare_output_dir, real_data_root, weights_root

REPO = Path(__file__).resolve().parents[1]

# Offline the probe trunks are random: they run at the galaxies' native 64 px so the
# sweep stays within the demo's time; with real weights the paper's 224 px upscaling.
OFFLINE_MODELS = ("resnet18", "dino")


def _have_weights() -> bool:
    root = weights_root()
    return root is not None and root.is_dir() and any(root.iterdir())


@dataclass(frozen=True)
class Lane:
    """A sequence of steps and the CPU threads its commands get.

    ``log_dir`` None: the steps print to the terminal; otherwise each step's output goes to
    a log file there and the terminal gets one line as it starts and one as it ends.
    """

    name: str
    threads: int | None = None
    log_dir: Path | None = None


def split_cores(cores: int) -> tuple[int, int] | None:
    """Threads for the two lanes that run side by side, or None to run them one after
    the other (a single core).

    On two cores two one-thread trainings beside each other finish 1.6x sooner than the
    same two one after the other with two threads each (a CPU step does not scale to a
    second core), and PyBDSF uses one core whatever it is given.

    Args:
        cores: the CPU cores this process may use.
    """
    if cores < 2:
        return None
    return cores - cores // 2, cores // 2


class Demo:
    """Runs the steps as subprocesses, times them and collects what the report needs.

    Steps of different lanes may run at the same time (one thread per lane); a failure in
    one lane stops the others at their next step and ends their running command.
    """

    def __init__(self, output: Path, *, quick: bool):
        self.output = output
        self.quick = quick
        self.timings: list[tuple[str, str, float, str]] = []
        self._failed = threading.Event()
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def run(self, title: str, argv: list[str], lane: Lane = Lane("main")) -> None:
        """Run one command from the repository root; a failure stops the demo.

        Args:
            title: the step's name in the terminal and the report.
            argv: the command.
            lane: where the step runs: its threads and where its output goes.
        """
        if self._failed.is_set():
            raise SystemExit(f"demo step '{title}' not run: another step failed")
        # shown as a user would type it; run with this interpreter
        shown = shlex.join(["python" if a == sys.executable else a for a in argv])
        # every step reads the simulated sets from the demo's own data root
        env = dict(
            os.environ, PYTHONPATH=str(REPO), ASTRODET_DATASETS=str(self.output / "datasets")
        )
        if lane.threads is not None:
            env.update(OMP_NUM_THREADS=str(lane.threads), MKL_NUM_THREADS=str(lane.threads))
        log = None
        if lane.log_dir is None:
            print(f"\n=== {title}\n$ {shown}", flush=True)
        else:
            lane.log_dir.mkdir(parents=True, exist_ok=True)
            path = lane.log_dir / f"{len(self.timings):02d}_{_slug(title)}.log"
            log = open(path, "w")
            log.write(f"$ {shown}\n")
            log.flush()
            print(f"\n=== [{lane.name}] {title} (log: {self.rel(path)})", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=log)
            with self._lock:
                self._running.add(proc)
            returncode = proc.wait()
        finally:
            if log is not None:
                log.close()
        with self._lock:
            self._running.discard(proc)
        seconds = time.perf_counter() - start
        self.timings.append((title, lane.name, seconds, shown))
        if lane.log_dir is not None:
            print(f"=== [{lane.name}] done in {seconds:.0f} s: {title}", flush=True)
        if returncode != 0:
            self.stop()
            where = f"; its output: {self.rel(path)}" if log is not None else ""
            raise SystemExit(f"demo step '{title}' failed (exit {returncode}): {shown}{where}")

    def stop(self) -> None:
        """Stop every lane: no new steps, running commands terminated."""
        self._failed.set()
        with self._lock:
            for proc in self._running:
                proc.terminate()

    def rel(self, path: Path) -> str:
        return os.path.relpath(path, self.output)


def run_lanes(
    demo: Demo, lanes: list[tuple[Lane, Callable[[Lane], Any]]], *, parallel: bool = True
) -> list[Any]:
    """Run each lane's function (its steps, in order) beside the others; return their
    results in order. The first lane runs in this thread. A failure in any lane stops all.

    Args:
        demo: the runner.
        lanes: (lane, function of the lane) pairs.
        parallel: False runs the lanes one after the other.
    """
    if not parallel:
        return [fn(lane) for lane, fn in lanes]
    with ThreadPoolExecutor(max_workers=max(1, len(lanes) - 1)) as pool:
        futures = [pool.submit(fn, lane) for lane, fn in lanes[1:]]
        try:
            first = lanes[0][1](lanes[0][0])
        except BaseException:
            demo.stop()
            raise
        rest = []
        for f in futures:
            try:
                rest.append(f.result())
            except BaseException:
                demo.stop()
                raise
    return [first, *rest]


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in title.lower()).strip("_")[:60]


def _read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output", default="output/demo", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="zoo models for the probes (default: dino resnet18 random-init offline; "
        "with $ASTRODET_WEIGHTS set, those weights)",
    )
    parser.add_argument(
        "--det-iters", type=int, default=300, help="detector iterations (fine-tuned)"
    )
    parser.add_argument("--quick", action="store_true", help="a much shorter run, for tests")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output folder"
    )
    args = parser.parse_args(argv)

    output = prepare_output_dir(Path(args.output).resolve(), overwrite=args.overwrite)
    demo = Demo(output, quick=args.quick)
    py = sys.executable
    online_weights = _have_weights() or args.models is not None
    models = list(args.models or OFFLINE_MODELS)
    weights = [] if online_weights else ["--weights", "none"]
    probe_size = ["--image-size", "224"] if online_weights else ["--image-size", "64"]
    det_iters = 20 if args.quick else args.det_iters
    frozen_iters = 10 if args.quick else max(det_iters // 3, 1)

    probe_args = dict(models=models, weights=weights, probe_size=probe_size, quick=args.quick)

    def simulated(lane: Lane) -> dict:
        """The simulated sky: detectors, the classical finder, pictures, the probes."""
        # 1. the simulated sky and galaxies, where every later step finds them
        synthetic = output / "datasets" / "synthetic"
        demo.run(
            "simulate the sky and galaxies",
            [py, "-m", "astrodet.data.synthetic", "--out", str(synthetic)],
            lane,
        )
        sky = synthetic / "sky"

        # 2. detection: fine-tuned and frozen as a two-point grid of the sweep tool, the
        # classical finder, pictures
        grid = output / "detector_grid.py"
        atomic_write_text(grid, _detector_grid(det_iters, frozen_iters))
        detectors = output / "detectors"
        demo.run(
            "train the detectors (fine-tuned and frozen)",
            [py, "tools/sweep.py", "--grid", str(grid), "--output", str(detectors)],
            lane,
        )
        runs = {
            "finetuned": detectors / f"freeze=none,iters={det_iters}",
            "frozen": detectors / f"freeze=backbone,iters={frozen_iters}",
        }
        det_report = output / "detection_report"
        demo.run(
            "detection table and figure from the runs",
            [py, "tools/report.py", str(detectors), "--output", str(det_report)],
            lane,
        )
        classical = output / "classical"
        demo.run(
            "classical source finder",
            [
                py,
                "tools/classical_baseline.py",
                "--json-file",
                str(sky / "test" / "annotations.json"),
                "--image-root",
                str(sky / "test" / "images"),
                # the finder learns the box convention from the training labels, as the
                # network does
                "--calibrate-on",
                str(sky / "train" / "annotations.json"),
                "--calibrate-images",
                str(sky / "train" / "images"),
                "--calibrate-nsigma",
                "4",
                "5",
                "--calibrate-max-images",
                "100",
                "--output",
                str(classical),
            ],
            lane,
        )
        vis = output / "predictions"
        demo.run(
            "draw predictions next to ground truth",
            [
                py,
                "tools/visualize_predictions.py",
                "--run",
                str(runs["finetuned"]),
                "--n",
                "4",
                "--out",
                str(vis),
            ],
            lane,
        )
        # 3. probes, supervised baseline, pictures on the simulated galaxies
        probes = _probes(demo, py, "synthetic_galaxies", lane, limit=None, **probe_args)
        return dict(runs=runs, det_report=det_report, classical=classical, vis=vis, probes=probes)

    def real(lane: Lane) -> tuple[dict | None, dict | None]:
        """The real sky: FIRST fields labelled by PyBDSF, then the probes on FIRST galaxies."""
        real_sky = _real_sky(demo, py, lane, quick=args.quick)
        probes = None
        if (real_data_root() / "first_radio_galaxy").is_dir():
            # a check that the same commands run on survey images: a subset keeps the
            # demo within its time
            probes = _probes(demo, py, "first_radio_galaxy", lane, limit=600, **probe_args)
        return real_sky, probes

    threads = split_cores(_cores())
    if threads is None:
        lanes = [(Lane("simulated sky"), simulated), (Lane("real sky"), real)]
    else:
        # side by side: the real sky's output goes to log files
        lanes = [
            (Lane("simulated sky", threads=threads[0]), simulated),
            (Lane("real sky", threads=threads[1], log_dir=output / "logs"), real),
        ]
    start = time.perf_counter()
    sim, (real_sky, first_probes) = run_lanes(demo, lanes, parallel=threads is not None)
    probe_results = {"synthetic_galaxies": sim["probes"]}
    if first_probes is not None:
        probe_results["first_radio_galaxy"] = first_probes
    _write_report(
        demo,
        real_sky=real_sky,
        runs=sim["runs"],
        det_report=sim["det_report"],
        classical=sim["classical"],
        vis=sim["vis"],
        probes=probe_results,
        models=models,
        random_init=not online_weights,
        wall_seconds=time.perf_counter() - start,
        parallel=threads is not None,
    )
    print(f"\nreport: {output / 'report.md'}")
    return 0


def _probes(
    demo: Demo,
    py: str,
    ds: str,
    lane: Lane,
    *,
    models: list[str],
    weights: list[str],
    probe_size: list[str],
    quick: bool,
    limit: int | None,
) -> dict:
    """Linear probes, the supervised baseline, PCA + UMAP and the F1 figure on one set."""
    fractions = ["0.1", "0.3", "0.5", "1.0"]
    if quick:
        limit = 200
    limit_args = ["--limit", str(limit)] if limit else []
    output = demo.output
    lin = output / "probe" / ds
    demo.run(
        f"linear probes on {ds}",
        [py, "-m", "probe.linear", "--model", *models, "--dataset", ds,
         "--fractions", *fractions, "--seeds", "1" if quick else "3",
         "--output", str(lin), *weights, *probe_size, *limit_args],
        lane,
    )  # fmt: skip
    sup = output / "supervised" / ds
    demo.run(
        f"supervised baseline on {ds}",
        [py, "-m", "probe.supervised", "--model", "resnet18", "--dataset", ds,
         "--fractions", *fractions, "--seeds", "1", "--epochs", "1" if quick else "2",
         "--image-size", "64", "--output", str(sup), *limit_args],
        lane,
    )  # fmt: skip
    umap = output / "umap" / ds
    demo.run(
        f"PCA + UMAP of the features on {ds}",
        [py, "-m", "probe.umap", "--model", *models, "--dataset", ds,
         "--output", str(umap), *weights, *probe_size, *limit_args],
        lane,
    )  # fmt: skip
    rep = output / "report" / ds
    demo.run(
        f"F1 against label fraction on {ds}",
        [py, "-m", "probe.report", str(lin / "results.json"), str(sup / "results.json"),
         "--output", str(rep)],
        lane,
    )  # fmt: skip
    return dict(linear=lin, supervised=sup, umap=umap, report=rep)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _detector_grid(det_iters: int, frozen_iters: int) -> str:
    """The demo's detection grid: fine-tuned and frozen, the frozen trunk trained shorter
    (its steps are cheap and it has less to learn)."""
    return f'''"""make demo's detectors: configs/synthetic_vit_small.py fine-tuned and frozen.

Its trunk is randomly initialised: the frozen point trains on random features, a
smoke test of the pipeline rather than a comparison.
"""

config = {str(REPO / "configs" / "synthetic_vit_small.py")!r}
axes = {{
    ("model.backbone.freeze", "train.max_iter"): [("none", {det_iters}), ("backbone", {frozen_iters})],
}}
names = {{"train.max_iter": "iters"}}
# evaluated and saved once, at the end
overrides = ["train.eval_period=0", "train.checkpoint_period=0"]
'''


def _write_report(
    demo: Demo,
    *,
    runs,
    classical,
    vis,
    probes,
    models,
    random_init,
    det_report=None,
    real_sky=None,
    wall_seconds=None,
    parallel=False,
) -> None:
    out = demo.output
    lines = ["# astrodet demo", ""]
    if random_init:
        lines += [
            f"No foundation-model weights were found, so the probe models ({', '.join(models)}) are "
            "**random-init trunks** of their architectures, and the detector's ViT is trained from "
            "scratch. The numbers show the pipeline working, not what the foundation models reach: set "
            '`ASTRODET_WEIGHTS` (see README) and run `make demo MODELS="dino msn resnet50"`.',
            "",
        ]
    lines += [
        "## Detection on the simulated sky",
        "",
        "| method | bbox/AP50 | bbox/AP | bbox/AP75 |",
        "|---|---|---|---|",
    ]
    for name, folder in (*runs.items(), ("classical source finder", classical)):
        m = _read_json(folder / "metrics.json")
        lines.append(
            f"| {name} | {_fmt(m.get('bbox/AP50'))} | {_fmt(m.get('bbox/AP'))} | {_fmt(m.get('bbox/AP75'))} |"
        )
    figure4 = det_report / "figure4.png" if det_report else None
    if figure4 is not None and figure4.exists():
        lines += [
            "",
            "mAP@50 per backbone, frozen against fine-tuned (the paper's Figure 4; "
            f"[summary]({demo.rel(det_report / 'summary.md')}), "
            f"[all runs]({demo.rel(det_report / 'runs.csv')})):",
            "",
            f"![figure 4]({demo.rel(figure4)})",
        ]
    lines += ["", "Predictions (right) next to the ground truth (left):", ""]
    for png in sorted(vis.glob("*.png")):
        lines.append(f"![{png.stem}]({demo.rel(png)})")
    for ds, p in probes.items():
        lines += ["", f"## Probes on {ds}", ""]
        table = p["report"] / "report.md"
        if table.exists():
            lines += [table.read_text().strip(), ""]
        for png in sorted(p["report"].glob("*.png")) + sorted(p["umap"].glob("*.png")):
            lines.append(f"![{png.stem}]({demo.rel(png)})")
        lines += [
            "",
            f"Results: [{demo.rel(p['linear'] / 'results.json')}]({demo.rel(p['linear'] / 'results.json')}), "
            f"[{demo.rel(p['supervised'] / 'results.json')}]({demo.rel(p['supervised'] / 'results.json')})",
        ]
    lines += _real_sky_lines(demo, real_sky)
    lines += ["", "## Steps", ""]
    if wall_seconds is not None:
        beside = " (the two lanes side by side, one share of the cores each)" if parallel else ""
        lines += [f"All steps: {wall_seconds:.0f} s{beside}.", ""]
    lines += ["| step | lane | seconds | command |", "|---|---|---|---|"]
    for title, lane, seconds, cmd in demo.timings:
        lines.append(f"| {title} | {lane} | {seconds:.0f} | `{cmd}` |")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _real_sky(demo: Demo, py: str, lane: Lane, *, quick: bool) -> dict | None:
    """Real FIRST fields: PyBDSF labels for the training fields, the small detector trained
    on them, sources found on the held-out fields by the detector, PyBDSF and the classical
    finder, both finders scored against PyBDSF. None without the real data."""
    from astrodet.sky.labels import (
        FIRST_TILE,
        FIRST_TRAIN_STRIDE,
        first_items,
        first_split,
    )

    real = real_data_root()
    if not (real / "mirabest" / "FITS_subset").is_dir():
        return None
    # the 300 px MiraBest fields, split as in the FIRST PyBDSF set (by sky footprint)
    split = first_split(first_items(real))
    fields = {"train": [], "test": []}
    for it in first_items(real):
        if it["kind"] == "mirabest":
            fields[split[it["name"]]].append(it["path"])
    beam = []  # SkyView's FIRST fields: each gets the beam of its declination (SURVEY = 'FIRST')
    root = demo.output / "first"
    for side in ("train", "test"):
        stride = FIRST_TRAIN_STRIDE if side == "train" else FIRST_TILE
        demo.run(
            f"PyBDSF labels for the {side} FIRST fields",
            [py, "datasets/prepare_mgcls.py", "--image", *fields[side], "--catalog", "pybdsf",
             *beam, "--size", str(FIRST_TILE), "--stride", str(stride),
             "--max-major-beams", "0", "--out", str(root / side)],
            lane,
        )  # fmt: skip
    run = root / "detector"
    data = [
        f"dataloader.{s}.dataset.{k}={root / s / v}"
        for s in ("train", "test")
        for k, v in (("json_file", "annotations.json"), ("image_root", "images"))
    ]
    demo.run(
        "train the small detector on PyBDSF's FIRST labels",
        [py, "tools/train_net.py", "--config-file", "configs/first_pybdsf_vit_small.py", *data,
         f"train.max_iter={10 if quick else 300}", "train.eval_period=0",
         "train.checkpoint_period=0", f"train.output_dir={run}"],
        lane,
    )  # fmt: skip
    found = root / "found"
    finders = {
        "detector": ["--config-file", "configs/first_pybdsf_vit_small.py",
                     "--weights", str(run / "model_final.pth")],
        "pybdsf": ["--finder", "pybdsf"],
        "classical": ["--finder", "classical"],
    }  # fmt: skip
    for name, how in finders.items():
        demo.run(
            f"find sources on the held-out FIRST fields ({name})",
            [py, "tools/find_sources.py", *how, "--image", *fields["test"], *beam,
             "--output", str(found / name)],
            lane,
        )  # fmt: skip
    scores = {}
    for name in ("detector", "classical"):
        demo.run(
            f"score the {name} against PyBDSF",
            [py, "tools/bench/sky.py", "--reference-dir", str(found / "pybdsf"),
             "--catalog-dir", str(found / name), "--output", str(root / f"{name}_vs_pybdsf")],
            lane,
        )  # fmt: skip
        scores[name] = root / f"{name}_vs_pybdsf" / "compare"
    return {"found": found, "scores": scores, "n_train": len(fields["train"]),
            "n_test": len(fields["test"])}  # fmt: skip


def _real_sky_lines(demo: Demo, real_sky: dict | None) -> list[str]:
    """The report's real-sky section: completeness and reliability per PyBDSF S/N bin."""
    if real_sky is None:
        return []
    metrics = {n: _read_json(p / "metrics.json") for n, p in real_sky["scores"].items()}
    lines = [
        "",
        "## Sources on real FIRST fields, against PyBDSF",
        "",
        f"The small detector trained {real_sky['n_train']} FIRST fields labelled by PyBDSF (a "
        f"short demo schedule), then ran on {real_sky['n_test']} held-out fields. Completeness "
        "(PyBDSF sources found) and reliability (found sources that PyBDSF has) per PyBDSF S/N:",
        "",
        "| PyBDSF S/N | PyBDSF sources | detector C | detector R | classical C | classical R |",
        "|---|---|---|---|---|---|",
    ]
    for i, b in enumerate(metrics["detector"]["snr_bins"]):
        row = [b["label"], str(b["n_reference"])]
        for n in ("detector", "classical"):
            nb = metrics[n]["snr_bins"][i]
            row += [_fmt(nb["completeness"]), _fmt(nb["reliability"])]
        lines.append("| " + " | ".join(row) + " |")
    for n, p in real_sky["scores"].items():
        lines += ["", f"{n}: ![completeness]({demo.rel(p / 'completeness.png')})"]
    pngs = sorted((real_sky["found"] / "detector").glob("*.png"))[:1]
    for png in pngs:
        lines += ["", f"Detector catalogue on {png.stem}: ![{png.stem}]({demo.rel(png)})"]
    return lines


if __name__ == "__main__":
    sys.exit(main())
