import json

import numpy as np
import pytest
import torch

from astrodet.structures import BoxMode
from astrodet.utils import (
    atomic_save_figure,
    atomic_save_torch,
    atomic_write_json,
    prepare_output_dir,
    real_data_root,
    seed_everything,
)


def test_atomic_write_json_is_strict_and_leaves_no_temporary(tmp_path):
    path = atomic_write_json(tmp_path / "m.json", {"ap": float("nan"), "x": np.float32(0.5)})
    assert json.loads(path.read_text()) == {"ap": None, "x": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_save_figure_writes_png_and_closes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = atomic_save_figure(fig, tmp_path / "pics" / "a.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    # a figure that cannot be rendered leaves no file behind, and is closed all the same
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):
        atomic_save_figure(fig, tmp_path / "b.png", dpi=-1)
    assert not (tmp_path / "b.png").exists() and not plt.fignum_exists(fig.number)
    assert [p.name for p in tmp_path.iterdir()] == ["pics"]


def test_atomic_save_torch_round_trip(tmp_path):
    path = atomic_save_torch({"w": torch.arange(3)}, tmp_path / "ck" / "model.pth")
    assert torch.equal(torch.load(path)["w"], torch.arange(3))


def test_prepare_output_dir_refuses_existing(tmp_path):
    out = tmp_path / "run"
    prepare_output_dir(out)
    (out / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        prepare_output_dir(out)
    assert (prepare_output_dir(out, resume=True) / "metrics.json").exists()
    assert not (prepare_output_dir(out, overwrite=True) / "metrics.json").exists()
    with pytest.raises(ValueError, match="exclude"):
        prepare_output_dir(out, overwrite=True, resume=True)


def test_real_data_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ASTRODET_REAL_DATA", str(tmp_path))
    assert real_data_root() == tmp_path


def test_seed_everything_repeats():
    seed_everything(3)
    a = (np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert a == (np.random.rand(), torch.rand(1).item())


def test_boxmode_round_trip():
    xywh = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 5.0, 5.0]])
    xyxy = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    np.testing.assert_allclose(xyxy, [[1, 2, 4, 6], [0, 0, 5, 5]])
    np.testing.assert_allclose(BoxMode.convert(xyxy, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS), xywh)
    assert BoxMode.convert([1, 2, 3, 4], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [1, 2, 4, 6]


def test_atomic_write_fits_keeps_a_survey_header_and_leaves_no_temporary(tmp_path):
    from astropy.io import fits

    from astrodet.utils import atomic_write_fits

    cards = ["SURVEY  = 'FIRST   '", "COMMENT Copyright:   1994. \t  Permission"]
    # read as SkyView writes it: a tab in a COMMENT card, which astropy will not write as is
    header = fits.Header.fromstring("".join(c.ljust(80) for c in cards))
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = atomic_write_fits(tmp_path / "d" / "img.fits", data, header)
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(hdul[0].data, data)
        assert hdul[0].header["SURVEY"] == "FIRST"
    assert [p.name for p in path.parent.iterdir()] == ["img.fits"]


def test_error_bars_clip_rounding_and_keep_lengths():
    from astrodet.utils import error_bars

    yerr = error_bars(
        [0.5, 0.9797794117647059], [0.25, 0.9797794117647058], [1.0, 0.9797794117647058]
    )
    assert yerr.shape == (2, 2)
    assert yerr[:, 0].tolist() == [0.25, 0.5]
    assert (yerr >= 0).all() and yerr[:, 1].max() < 1e-12
