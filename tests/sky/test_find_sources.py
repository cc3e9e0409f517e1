"""tools/find_sources.py end to end with a tiny random-init detector on a small synthetic
field: catalogue files and picture written, their rows those of the merged boxes; bad
input gives one-line errors."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from astrodet.config import LazyConfig, instantiate
from astrodet.sky import COLUMNS, open_field, read_catalogue
from astrodet.sky.finders.detector import DetectorFinder

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import find_sources  # noqa: E402

CONFIG = ROOT / "configs" / "first_pybdsf_vit_small.py"
TINY = [
    "model.backbone.trunk_kwargs.embed_dim=32",
    "model.backbone.trunk_kwargs.depth=1",
    "model.backbone.trunk_kwargs.num_heads=2",
    "model.backbone.trunk_kwargs.img_size=64",
    "model.image_size=64",
    "model.backbone.out_channels=16",
    "model.representation_size=32",
    "dataloader.tile_size=32",
    "dataloader.tile_overlap=8",
    "train.num_threads=1",
]


def _weights(path, overrides=TINY):
    torch.manual_seed(0)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(CONFIG)), list(overrides))
    torch.save({"model": instantiate(cfg.model).state_dict()}, path)
    return path


def _fits(path, *, wcs=True, nan=False, shape=(70, 90)):
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1e-4, shape).astype(np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for x, y in [(20, 30), (60, 15), (45, 50)]:
        data += 5e-3 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.3**2))
    if nan:
        data[:] = np.nan
    h = fits.Header()
    if wcs:
        h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---SIN", 200.0, 45.0, -1.8 / 3600
        h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--SIN", 30.0, 35.0, 1.8 / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = 5.4 / 3600, 5.4 / 3600, 0.0
    fits.PrimaryHDU(data, header=h).writeto(path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    return _weights(d / "model_final.pth")


def _run(*args):
    return find_sources.main([str(a) for a in args])


def test_find_sources_writes_catalogue_and_picture(tmp_path, tiny):
    image = _fits(tmp_path / "field.fits")
    out = tmp_path / "out"
    args = ["--config-file", CONFIG, "--weights", tiny, "--image", image, "--output", out]
    every = ["--score-thresh", "0.0", "--min-snr", "0"]  # every box the random model gives
    assert _run(*args, *every, "--batch-size", "4", *TINY) == 0
    for suffix in ("fits", "csv", "reg", "png"):
        assert (out / f"field.{suffix}").stat().st_size > 0
    table = Table.read(out / "field.fits")
    assert list(table.colnames[: len(COLUMNS)]) == list(COLUMNS)
    csv = read_catalogue(out / "field.csv")
    assert len(csv) == len(table)
    # the rows are the boxes left after merging the tiles, each measured once
    finder = DetectorFinder.from_config(
        CONFIG, tiny, overrides=TINY, score_thresh=0.0, progress=False
    )
    with open_field(image) as field:
        boxes, _ = finder.detect(field)
    assert len(boxes) == len(table) > 0
    assert finder.stats["tiles"] == 12  # 70 x 90 px in tiles of 32 overlapping by 8
    assert np.all(np.isfinite(table["ra"])) and np.all(np.isfinite(table["peak_flux"]))
    assert (out / "field.reg").read_text().count("ellipse") == len(table)
    # an existing catalogue is kept unless --overwrite
    with pytest.raises(SystemExit) as e:
        _run(*args, *TINY)
    assert e.value.code == 2
    assert _run(*args, "--overwrite", "--score-thresh", "0.0", *TINY) == 0
    # the default S/N cut keeps only the measured sources at S/N 5 or more
    bright = Table.read(out / "field.fits")
    assert 0 < len(bright) == int((np.asarray(table["snr"]) >= 5).sum()) < len(table)
    assert _run(*args, "--overwrite", "--score-thresh", "0.99", *TINY) == 0


def test_bad_inputs_are_one_line_errors(tmp_path, tiny, capsys):
    blank = _fits(tmp_path / "blank.fits", nan=True)
    with pytest.raises(SystemExit) as e:
        _run(
            "--config-file",
            CONFIG,
            "--weights",
            tiny,
            "--image",
            blank,
            "--output",
            tmp_path / "o",
            *TINY,
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "blank.fits" in err and "NaN" in err and len(err.splitlines()) == 1
    # a checkpoint of another model: named, one line
    other = _weights(
        tmp_path / "other.pth", [*TINY[:-1], "model.backbone.trunk_kwargs.embed_dim=48"]
    )
    image = _fits(tmp_path / "f.fits")
    with pytest.raises(SystemExit) as e:
        _run(
            "--config-file",
            CONFIG,
            "--weights",
            other,
            "--image",
            image,
            "--output",
            tmp_path / "o",
            *TINY,
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "other.pth" in err and "does not fit" in err and len(err.splitlines()) == 1


def test_field_without_wcs_gives_a_pixel_catalogue(tmp_path, tiny):
    image = _fits(tmp_path / "nowcs.fits", wcs=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (
            _run(
                "--config-file",
                CONFIG,
                "--weights",
                tiny,
                "--image",
                image,
                "--output",
                tmp_path / "o",
                "--score-thresh",
                "0.0",
                "--no-rescale",
                *TINY,
            )
            == 0
        )
    assert any("no celestial WCS" in str(w.message) for w in caught)
    table = read_catalogue(tmp_path / "o" / "nowcs.fits")
    ra, x = np.asarray(table["ra"], float), np.asarray(table["x"], float)
    assert len(table) > 0 and np.all(np.isnan(ra)) and np.all(np.isfinite(x))


def test_training_beam_and_tile_come_from_the_checkpoint(tmp_path, caplog):
    """Weights trained at another beam in pixels than the config given now says: the
    checkpoint's record wins, with a warning naming both."""
    path = _weights(tmp_path / "model_final.pth")
    data = torch.load(path, weights_only=True)
    data["meta"] = {"beam_pixels": 6.0, "tile_size": 48, "tile_overlap": 12}
    torch.save(data, path)
    with caplog.at_level("WARNING"):
        finder = DetectorFinder.from_config(CONFIG, path, overrides=TINY)
    assert finder.beam_pixels == 6.0 and finder.tile_size == 48 and finder.overlap == 12
    assert "trained with dataloader.beam_pixels=6.0" in caplog.text
    # without a record, the config's values
    finder = DetectorFinder.from_config(CONFIG, _weights(tmp_path / "plain.pth"), overrides=TINY)
    assert finder.beam_pixels == 3.0 and finder.tile_size == 32 and finder.overlap == 8


def test_images_shared_across_processes_as_under_torchrun(tmp_path, tiny, monkeypatch):
    """Process r of N (torchrun's RANK, WORLD_SIZE) takes images r, r+N, ...: together the
    processes write every catalogue once, the same as one process writes."""
    images = [_fits(tmp_path / f"f{i}.fits") for i in range(3)]
    common = ["--config-file", CONFIG, "--weights", tiny, "--no-picture", "--image", *images]
    monkeypatch.setenv("WORLD_SIZE", "2")
    written = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        out = tmp_path / f"rank{rank}"
        assert _run(*common, "--output", out, "--score-thresh", "0.0", *TINY) == 0
        written[rank] = sorted(p.stem for p in out.glob("*.fits"))
    assert written == {0: ["f0", "f2"], 1: ["f1"]}
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert _run(*common, "--output", tmp_path / "one", "--score-thresh", "0.0", *TINY) == 0
    for rank, stems in written.items():
        for stem in stems:
            alone = Table.read(tmp_path / "one" / f"{stem}.fits")
            shared = Table.read(tmp_path / f"rank{rank}" / f"{stem}.fits")
            assert len(alone) == len(shared) > 0
            np.testing.assert_allclose(np.asarray(alone["ra"]), np.asarray(shared["ra"]))


def test_bf16_backbone_gives_the_float32_boxes(tmp_path, tiny):
    image = _fits(tmp_path / "field.fits")
    found = {}
    for precision in ("fp32", "bf16"):
        finder = DetectorFinder.from_config(
            CONFIG, tiny, overrides=TINY, score_thresh=0.0, progress=False, precision=precision
        )
        assert finder.precision == precision
        with open_field(image) as field:
            found[precision] = finder.detect(field)
            if precision == "bf16":
                assert finder.find(field).meta["PRECISN"] == "bf16"
    (b32, s32), (b16, _) = found["fp32"], found["bf16"]
    assert len(b32) > 0
    # the same detections; the boxes a small fraction of a pixel apart
    strong = s32 > s32.max() / 2
    for box in b32[strong]:
        assert np.abs(b16 - box).max(axis=1).min() < 0.25
    with pytest.raises(ValueError, match="precision"):
        DetectorFinder.from_config(CONFIG, tiny, overrides=TINY, precision="fp16")


def test_inference_threads(tmp_path, tiny, monkeypatch, capsys):
    from astrodet.sky.finders.detector import default_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert default_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")  # torchrun's processes share the cores
    assert default_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a set thread count is kept
    assert default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "0")  # not a count: ignored
    assert default_threads() == 2
    before = torch.get_num_threads()
    try:
        DetectorFinder.from_config(CONFIG, tiny, overrides=TINY, num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    image = _fits(tmp_path / "f.fits")
    with pytest.raises(SystemExit) as e:
        _run("--finder", "classical", "--image", image, "--output", tmp_path / "o", "--threads", 0)
    assert e.value.code == 2 and "--threads" in capsys.readouterr().err


def test_a_configs_finder_dict_is_the_default_operating_point(tiny):
    injected = ROOT / "configs" / "first_injected_vit_small.py"
    point = LazyConfig.load(str(injected)).finder
    finder = DetectorFinder.from_config(injected, tiny, overrides=TINY, progress=False)
    assert finder.min_snr == point["min_snr"] and finder.min_peak_snr == point["min_peak_snr"]
    assert finder.operating_point == dict(point)
    # arguments and overrides take precedence
    finder = DetectorFinder.from_config(
        injected, tiny, overrides=[*TINY, "finder.min_peak_snr=6.0"], min_snr=7.0, progress=False
    )
    assert (finder.min_snr, finder.min_peak_snr) == (7.0, 6.0)
    # a config without one keeps the finder's defaults
    assert DetectorFinder.from_config(CONFIG, tiny, overrides=TINY, progress=False).min_snr == 5.0
    with pytest.raises(ValueError, match=r"finder\.bogus is not a finder setting"):
        DetectorFinder.from_config(injected, tiny, overrides=[*TINY, "+finder.bogus=1"])
