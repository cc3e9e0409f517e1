"""Label-fraction sweeps from the command line, on the toy set and the real FIRST and
DECaLS sets, with every F1 recomputed from the saved predictions."""

import json
import logging

import numpy as np
import pytest
from sklearn.metrics import f1_score

from probe import linear
from probe.results import read_predictions

TINY = json.dumps({"embed_dim": 32, "depth": 1, "num_heads": 2})


def sweep_args(dataset, tmp_path, *extra, out="out"):
    return [
        "--model", "dino", "--dataset", dataset, "--weights", "none", "--image-size", "32",
        "--model-kwargs", TINY, "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
        "--output", str(tmp_path / out), *extra,
    ]  # fmt: skip


def check_recomputed(out, *, n_runs, n_test):
    res = json.loads((out / "results.json").read_text())
    assert len(res["runs"]) == n_runs
    for run in res["runs"]:
        y_true, y_pred = read_predictions(out / run["predictions"])
        assert len(y_true) == n_test
        assert run["macro_f1"] == pytest.approx(
            f1_score(y_true, y_pred, average="macro", labels=range(len(res["class_names"])))
        )
        assert run["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    return res


def test_toy_sweep_fast_paper_knn(toy_dataset, tmp_path):
    assert (
        linear.main(sweep_args("probe_toy", tmp_path, "--fractions", "0.5", "1.0", "--seeds", "2"))
        == 0
    )
    res = check_recomputed(tmp_path / "out", n_runs=4, n_test=18)
    assert (res["dataset"], res["protocol"], res["head"]) == ("probe_toy", "fast", "linear")
    assert res["class_names"] == ["blob", "hbar", "vbar"]
    assert {(r["fraction"], r["seed"]) for r in res["runs"]} == {
        (0.5, 0),
        (0.5, 1),
        (1.0, 0),
        (1.0, 1),
    }
    assert [r["n_train"] for r in res["runs"] if r["fraction"] == 0.5] == [13, 13]
    assert all(r["class_weighted"] for r in res["runs"])  # 12/8/6 is unbalanced
    assert len(res["summary"]) == 2 and res["summary"][0]["n_runs"] == 2
    # the toy classes are easy even for random features: the probe is not a formality
    full = [r["macro_f1"] for r in res["runs"] if r["fraction"] == 1.0]
    assert min(full) > 0.6
    extras = (
        ["--protocol", "paper", "--epochs", "3"],
        ["--protocol", "logistic"],
        ["--head", "knn"],
    )
    for extra in extras:
        out = "o_" + extra[1]
        args = sweep_args(
            "probe_toy", tmp_path, "--fractions", "1.0", "--seeds", "1", *extra, out=out
        )
        assert linear.main(args) == 0
        res = check_recomputed(tmp_path / out, n_runs=1, n_test=18)
        assert res["protocol"] == (extra[1] if extra[0] == "--protocol" else "fast")
        assert res["head"] == ("knn" if extra[1] == "knn" else "linear")


def test_existing_output_refused_then_resumed(toy_dataset, tmp_path, caplog):
    args = sweep_args("probe_toy", tmp_path, "--fractions", "1.0", "--seeds", "1")
    assert linear.main(args) == 0
    with caplog.at_level(logging.ERROR):
        assert linear.main(args) == 1
    assert "--overwrite" in caplog.text
    resumed = sweep_args(
        "probe_toy", tmp_path, "--fractions", "0.5", "1.0", "--seeds", "1", "--resume"
    )
    assert linear.main(resumed) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(r["fraction"] for r in res["runs"]) == [0.5, 1.0]


def test_fraction_raised_keeps_every_class(caplog):
    labels = np.array([0] * 50 + [1] * 30 + [2] * 3)
    with caplog.at_level(logging.WARNING):
        idx, raised = linear.fraction_indices(labels, 0.1, seed=0, class_names=["a", "b", "c"])
    assert raised == ["c"]
    assert set(labels[idx]) == {0, 1, 2} and len(idx) == 5 + 3 + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "fraction 0.1 of 83 examples leaves class(es) c empty; "
        "raised to one example per class (9 examples)"
    ]
    idx2, _ = linear.fraction_indices(labels, 0.1, seed=0)
    assert np.array_equal(idx, idx2)  # seeded
    with pytest.raises(ValueError, match="fraction must be in"):
        linear.fraction_indices(labels, 1.5, seed=0)


def test_bad_cli_input(toy_dataset, tmp_path, capsys):
    for argv, expected in [
        (["--model", "dino", "vgg16", "--dataset", "probe_toy"], "valid models: mae, dino"),
        (["--model", "dino", "--dataset", "cifar"], "valid datasets: "),
        (["--model", "dino", "--dataset", "probe_toy", "--fractions", "0"], "(0, 1]"),
    ]:
        with pytest.raises(SystemExit) as e:
            linear.main(argv)
        assert e.value.code == 2
        assert expected in capsys.readouterr().err


@pytest.mark.real_data
@pytest.mark.parametrize("dataset,classes", [
    ("first_radio_galaxy", ["FRI", "FRII", "Compact", "Bent"]),
    ("decals_rings", ["no_ring", "ring"]),
])  # fmt: skip
def test_real_sets_end_to_end(real_data, tmp_path, dataset, classes):
    args = sweep_args(
        dataset, tmp_path, "--fractions", "0.3", "1.0", "--seeds", "2", "--limit", "48"
    )
    assert linear.main(args) == 0
    res = check_recomputed(tmp_path / "out", n_runs=4, n_test=48)
    assert res["class_names"] == classes
    assert res["settings"]["limit"] == 48
    for run in res["runs"]:
        assert np.array(run["confusion_matrix"]).shape == (len(classes), len(classes))
        assert len(run["per_class_f1"]) == len(classes)
    # the second sweep with another head reads the cached features
    args = sweep_args(
        dataset,
        tmp_path,
        "--fractions",
        "1.0",
        "--seeds",
        "1",
        "--limit",
        "48",
        "--head",
        "knn",
        out="knn",
    )
    assert linear.main(args) == 0
    check_recomputed(tmp_path / "knn", n_runs=1, n_test=48)


def test_sweep_on_a_folder_of_class_subfolders(tmp_path):
    from PIL import Image

    from astrodet.data import DatasetCatalog, MetadataCatalog

    root = tmp_path / "Toy Folder"
    rng = np.random.default_rng(0)
    bar = np.zeros((16, 16))
    bar[6:10] = 1.0
    for split, n in (("train", 12), ("test", 6)):
        for i in range(n):
            for name, img in (("horizontal", bar), ("vertical", bar.T)):
                path = root / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                noisy = np.clip(img + 0.3 * rng.random((16, 16)), 0, 1)
                Image.fromarray((noisy * 255).astype(np.uint8)).save(path)
    try:
        args = sweep_args(str(root), tmp_path, "--fractions", "1.0", "--seeds", "1")
        assert linear.main(args) == 0
        res = check_recomputed(tmp_path / "out", n_runs=1, n_test=12)
        assert res["dataset"] == "toy_folder"
        assert res["settings"]["stretch"] is None  # PNGs: already display images
        assert res["class_names"] == ["horizontal", "vertical"]
        assert res["runs"][0]["macro_f1"] > 0.8
    finally:
        for s in ("train", "test"):
            DatasetCatalog.remove(f"toy_folder_{s}")
            MetadataCatalog.remove(f"toy_folder_{s}")
