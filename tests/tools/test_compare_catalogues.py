"""tools/compare_catalogues.py end to end: metrics.json, the figure, errors in one line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sky"))
from test_crossmatch import make_pair  # noqa: E402

from astrodet.sky.catalogue import write_catalogue  # noqa: E402

TOOL = Path(__file__).resolve().parents[2] / "tools" / "compare_catalogues.py"


def _tool():
    spec = importlib.util.spec_from_file_location("compare_catalogues_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_writes_metrics_and_figure(tmp_path):
    ref, cat = make_pair()
    write_catalogue(ref, tmp_path / "ref", formats=["fits"])
    write_catalogue(cat, tmp_path / "cat", formats=["csv"])
    out = tmp_path / "cmp"
    argv = [
        "--reference",
        str(tmp_path / "ref.fits"),
        "--catalog",
        str(tmp_path / "cat.csv"),
        "--output",
        str(out),
    ]
    assert _tool().main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # The radius comes from the reference's beam (6"): half of it, 3".
    assert metrics["radius_arcsec"] == 3.0 and "reference" in metrics["radius_from"]
    assert (metrics["n_reference"], metrics["n_catalog"], metrics["n_matched"]) == (6, 7, 4)
    assert metrics["snr_bins"][0]["n_reference"] == 2
    assert (out / "completeness.png").stat().st_size > 1000
    assert len(Table.read(out / "matches.csv", format="ascii.csv")) == 4
    # An existing folder needs --overwrite; --radius-arcsec wins over the beam.
    with pytest.raises(SystemExit):
        _tool().main(argv)
    assert _tool().main([*argv, "--overwrite", "--radius-arcsec", "3.5"]) == 0
    assert json.loads((out / "metrics.json").read_text())["n_matched"] == 5


def test_missing_columns_is_a_one_line_error(tmp_path, capsys):
    Table({"name": ["a"], "flux": [1.0]}).write(tmp_path / "bad.csv", format="ascii.csv")
    ref, _ = make_pair()
    write_catalogue(ref, tmp_path / "ref", formats=["fits"])
    argv = [
        "--reference",
        str(tmp_path / "ref.fits"),
        "--catalog",
        str(tmp_path / "bad.csv"),
        "--output",
        str(tmp_path / "o"),
    ]
    with pytest.raises(SystemExit) as e:
        _tool().main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("compare_catalogues") or "error:" in err[-1]
    assert "bad.csv" in err[-1] and "name, flux" in err[-1]
    assert not (tmp_path / "o").exists()


def test_missing_image_is_a_one_line_error(tmp_path, capsys):
    ref, cat = make_pair()
    write_catalogue(ref, tmp_path / "ref", formats=["fits"])
    write_catalogue(cat, tmp_path / "cat", formats=["fits"])
    argv = ["--reference", str(tmp_path / "ref.fits"), "--catalog", str(tmp_path / "cat.fits")]
    with pytest.raises(SystemExit) as e:
        _tool().main([*argv, "--output", str(tmp_path / "o"), "--image", str(tmp_path / "no.fits")])
    assert e.value.code == 2
    assert "no.fits" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()
