"""results.json schema, recomputation from the prediction CSVs, and the report."""

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from probe import report
from probe.results import load_results, make_run, read_predictions, write_results


def fake_results(tmp_path, name, protocol, models, *, seed=0):
    rng = np.random.default_rng(seed)
    out = tmp_path / name
    y_true = rng.integers(0, 3, 50)
    runs = []
    for model, skill in models.items():
        for fraction in (0.1, 0.5, 1.0):
            for s in range(3):
                correct = rng.random(50) < skill * (0.6 + 0.4 * fraction)
                y_pred = np.where(correct, y_true, rng.integers(0, 3, 50))
                runs.append(
                    make_run(
                        output=out,
                        model=model,
                        fraction=fraction,
                        seed=s,
                        n_train=int(100 * fraction),
                        y_true=y_true,
                        y_pred=y_pred,
                        num_classes=3,
                    )
                )
    path = write_results(
        out, dataset="toy", protocol=protocol, head="linear", class_names=["a", "b", "c"], runs=runs
    )
    return path


def test_results_schema_and_recompute(tmp_path):
    path = fake_results(tmp_path, "probe", "fast", {"dino": 0.9, "mae": 0.6})
    res = json.loads(path.read_text())
    assert {"dataset", "protocol", "head", "runs", "summary", "class_names"} <= set(res)
    assert len(res["runs"]) == 2 * 3 * 3 and len(res["summary"]) == 2 * 3
    for run in res["runs"]:
        assert {
            "model",
            "fraction",
            "seed",
            "n_train",
            "macro_f1",
            "accuracy",
            "per_class_f1",
            "confusion_matrix",
            "predictions",
        } <= set(run)
        y_true, y_pred = read_predictions(path.parent / run["predictions"])
        assert run["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
        assert run["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
        assert np.array(run["confusion_matrix"]).sum() == len(y_true)
    for s in res["summary"]:
        f1s = [
            r["macro_f1"]
            for r in res["runs"]
            if r["model"] == s["model"] and r["fraction"] == s["fraction"]
        ]
        assert s["macro_f1"]["mean"] == pytest.approx(np.mean(f1s))
        assert s["macro_f1"]["min"] == min(f1s) and s["macro_f1"]["max"] == max(f1s)
    csv_rows = (path.parent / "results.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(res["runs"])


def test_load_results_names_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_results(tmp_path / "nothere" / "results.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"dataset": "x"}')
    with pytest.raises(ValueError, match="missing key 'protocol'"):
        load_results(bad)


def test_report_figure_and_table(tmp_path, capsys):
    probe_json = fake_results(tmp_path, "probe", "fast", {"dino": 0.9, "mae": 0.6}, seed=1)
    sup_json = fake_results(tmp_path, "sup", "supervised", {"resnet18": 0.8}, seed=2)
    out = tmp_path / "report"
    assert report.main([str(probe_json), str(sup_json), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "| resnet18 (supervised) |" in md and "| dino |" in md
    # the table's numbers are the mean [min, max] of the runs
    runs = json.loads(probe_json.read_text())["runs"]
    f1s = [r["macro_f1"] for r in runs if r["model"] == "mae" and r["fraction"] == 0.5]
    cell = f"{np.mean(f1s):.3f} [{min(f1s):.3f}, {max(f1s):.3f}]"
    mae_row = next(line for line in md.splitlines() if line.startswith("| mae |"))
    assert mae_row.split(" | ")[2] == cell
    assert cell in printed
    import matplotlib.image

    img = matplotlib.image.imread(out / "f1_vs_fraction.png")
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # lines and text, not a blank canvas
    assert (img[..., :3].mean(-1) < 0.5).mean() > 0.001


def test_report_series_marks_supervised_dashed(tmp_path):
    a = load_results(fake_results(tmp_path, "p", "fast", {"msn": 0.9}))
    b = load_results(fake_results(tmp_path, "s", "supervised", {"resnet18": 0.9}))
    series = report.collect([a, b])
    assert [s["supervised"] for s in series] == [False, True]
    assert series[0]["fractions"] == [0.1, 0.5, 1.0]
    assert all(lo <= m <= hi for s in series for lo, m, hi in zip(s["min"], s["mean"], s["max"]))


def test_report_missing_file_exit_code(tmp_path):
    assert report.main([str(tmp_path / "none.json")]) == 1


def test_report_figure_when_mean_rounds_past_max(tmp_path):
    # three equal F1 values: their float mean lands one rounding step above their max
    f1 = 0.9797794117647058
    assert np.mean([f1, f1, f1]) > f1
    series = [
        dict(
            dataset="toy",
            label="resnet18",
            supervised=False,
            fractions=[0.5, 1.0],
            mean=[0.9, float(np.mean([f1, f1, f1]))],
            min=[0.8, f1],
            max=[0.95, f1],
        )
    ]
    path = report.plot_f1_vs_fraction(series, tmp_path / "f1.png")
    assert path.stat().st_size > 1000
