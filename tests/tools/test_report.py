"""tools/report.py: the run table and summary recomputed from run folders' config.yaml and
metrics.json, Figure 4, Figure 3 from probe results, and clear errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from astrodet.config import LazyConfig

REPO = Path(__file__).resolve().parents[2]
BACKBONES = ("dino", "resnet50")


def _main(argv):
    spec = importlib.util.spec_from_file_location("report_under_test", REPO / "tools" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _run(folder: Path, *, dataset, trunk, freeze, fraction, seed, ap50, final=True) -> Path:
    """A run folder as the engine leaves it: config.yaml, the final evaluation (in
    metrics.json and metrics.jsonl), then model_final.pth; ``final=False``: an evaluation
    before the last iteration."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({
        "model": {"backbone": {"trunk": trunk, "weights": "auto", "freeze": freeze}},
        "dataloader": {"train": {"fraction": fraction, "dataset": {
            "json_file": f"datasets/{dataset}/train/annotations.json",
            "dataset_name": f"{dataset}_train"}}},
        "train": {"seed": seed, "max_iter": None, "epochs": 100, "output_dir": str(folder)},
    })  # fmt: skip
    folder.mkdir(parents=True)
    LazyConfig.save(cfg, folder / "config.yaml")
    metrics = {"bbox/AP50": ap50, "bbox/AP": ap50 / 2, "bbox/AP75": ap50 / 3}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "metrics.jsonl").write_text(
        json.dumps({"iteration": 10, "total_loss": 1.0}) + "\n"
        + json.dumps({"iteration": 10, **metrics}) + "\n"
        + ("" if final else json.dumps({"iteration": 20, "total_loss": 1.0}) + "\n")
    )  # fmt: skip
    (folder / "model_final.pth").write_bytes(b"weights")
    os.utime(folder / "metrics.json", (1e9, 1e9))  # evaluated before the final save
    return folder


@pytest.fixture
def sweep(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "sweeps"
    for dataset in ("mgcls", "rgz"):
        for trunk in BACKBONES:
            for freeze in ("backbone", "none"):
                for fraction in (0.1, 1.0):
                    for seed in (0, 1, 2):
                        name = f"{trunk},{freeze},{fraction},{seed}"
                        _run(root / dataset / name, dataset=dataset, trunk=trunk, freeze=freeze,
                             fraction=fraction, seed=seed, ap50=float(rng.uniform(0.1, 0.9)))  # fmt: skip
    # an unfinished run (left out of the summary) and a folder never evaluated (skipped)
    _run(root / "mgcls" / "late", dataset="mgcls", trunk="dino", freeze="none", fraction=0.1,
         seed=9, ap50=0.0, final=False)  # fmt: skip
    (root / "mgcls" / "queued").mkdir()
    LazyConfig.save(LazyConfig.load(root / "mgcls" / "late" / "config.yaml"),
                    root / "mgcls" / "queued" / "config.yaml")  # fmt: skip
    return root


def _expected(root: Path) -> dict:
    """(dataset, backbone, mode, fraction) -> AP50 values, read back from the folders."""
    groups: dict = {}
    for metrics in root.rglob("metrics.json"):
        run = metrics.parent
        if run.name == "late":
            continue
        cfg = LazyConfig.load(run / "config.yaml")
        mode = "fine-tuned" if cfg.model.backbone.freeze == "none" else "frozen"
        key = (run.parent.name, cfg.model.backbone.trunk, mode, cfg.dataloader.train.fraction)
        groups.setdefault(key, []).append(json.loads(metrics.read_text())["bbox/AP50"])
    return groups


def test_tables_recomputed_from_runs(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert _main([str(sweep), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "queued" in printed and "1 not finished" in printed

    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 2 * 2 * 2 * 2 * 3 + 1
    for row in rows:
        metrics = json.loads((Path(row["run"]) / "metrics.json").read_text())
        assert float(row["bbox/AP50"]) == metrics["bbox/AP50"]
        assert float(row["bbox/AP75"]) == metrics["bbox/AP75"]
    assert {r["complete"] for r in rows if r["run"].endswith("late")} == {"False"}

    summary = (out / "summary.md").read_text()
    expected = _expected(sweep)
    assert len(expected) == 2 * 2 * 2 * 2
    for (dataset, backbone, mode, fraction), values in expected.items():
        block = summary.split(f"### {dataset}:")[1].split("###")[0]
        (line,) = [x for x in block.splitlines() if x.startswith(f"| {backbone} | {mode} |")]
        cells = [c.strip() for c in line.strip("|").split("|")][2:]
        cell = cells[[0.1, 1.0].index(fraction)]
        mean, lo, hi, n = re.fullmatch(r"(\S+) \[(\S+), (\S+)\] \((\d+)\)", cell).groups()
        assert float(mean) == pytest.approx(np.mean(values), abs=6e-4)
        assert float(lo) == pytest.approx(min(values), abs=6e-4)
        assert float(hi) == pytest.approx(max(values), abs=6e-4)
        assert int(n) == 3
    assert (out / "figure4.png").stat().st_size > 10_000
    assert not (out / "probes").exists()  # no probe results under the folders


def test_figure3_from_probe_results(sweep, tmp_path):
    probe = sweep / "probe" / "gmnist"
    probe.mkdir(parents=True)
    runs = [{"model": m, "fraction": f, "seed": s, "macro_f1": 0.5 + 0.1 * f + 0.01 * s}
            for m in ("dino", "msn") for f in (0.1, 1.0) for s in (0, 1)]  # fmt: skip
    (probe / "results.json").write_text(
        json.dumps({"dataset": "gmnist", "protocol": "fast", "runs": runs})
    )
    out = tmp_path / "report"
    assert _main([str(sweep), "--output", str(out)]) == 0
    assert (out / "probes" / "f1_vs_fraction.png").stat().st_size > 0
    assert "gmnist" in (out / "probes" / "report.md").read_text()
    assert (out / "figure4.png").exists()


def test_errors(sweep, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        _main([str(empty), "--output", str(tmp_path / "r")])
    assert e.value.code == 2 and "no run folders" in capsys.readouterr().err
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(SystemExit) as e:
        _main([str(sweep), "--output", str(out)])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert _main([str(sweep), "--output", str(out), "--overwrite"]) == 0
