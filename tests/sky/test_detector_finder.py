"""Tiled detection over whole fields: tile merging, NaN tiles, resampling by beam, WCS
positions. A small deterministic detector (boxes around the bright pixels of each tile it
is shown) stands in for a trained network, so that every expected box is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.io import fits
from scipy import ndimage

from astrodet.sky.field import FieldError, open_field
from astrodet.sky.finders.detector import (
    DetectorFinder,
    TileBoxes,
    drop_inner_edge_boxes,
    merge_tile_boxes,
)


class ThresholdDetector(torch.nn.Module):
    """Boxes around the 8-connected groups of pixels above ``level`` (stretched input),
    score = the group's peak; returns torchvision's eval output."""

    def __init__(self, level: float = 0.5):
        super().__init__()
        self.level = level
        self.calls = 0

    def forward(self, images):
        out = []
        for im in images:
            self.calls += 1
            a = im[0].numpy()
            lab, n = ndimage.label(a > self.level, structure=np.ones((3, 3)))
            boxes, scores = [], []
            for k, sl in enumerate(ndimage.find_objects(lab), start=1):
                ys, xs = sl
                boxes.append([xs.start, ys.start, xs.stop, ys.stop])
                scores.append(float(a[sl][lab[sl] == k].max()))
            out.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.tensor(scores, dtype=torch.float32),
                    "labels": torch.ones(len(boxes), dtype=torch.int64),
                }
            )
        return out


def _field(tmp_path, data, *, pixel=2.0, beam=(6.0, 6.0, 0.0), name="f.fits"):
    h = fits.Header()
    ny, nx = data.shape
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---TAN", 150.0, nx / 2, -pixel / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--TAN", 2.0, ny / 2, pixel / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = beam[0] / 3600, beam[1] / 3600, beam[2]
    path = tmp_path / name
    fits.PrimaryHDU(data.astype(np.float32), header=h).writeto(path)
    return path


def _sky(shape, sources, *, sigma=1.3, seed=0, noise=1e-3):
    """Gaussian noise plus point sources ``(x, y, peak)`` of width ``sigma`` pixels."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, noise, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for x, y, peak in sources:
        data += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return data


def _finder(model, **kw):
    kw.setdefault("tile_size", 32)
    kw.setdefault("beam_pixels", 3.0)
    kw.setdefault("overlap", 8)
    kw.setdefault("score_thresh", 0.0)
    kw.setdefault("progress", False)
    kw.setdefault("measure", False)
    return DetectorFinder(model=model, stretch="snr", **kw)


def _centres(boxes):
    return np.stack(
        [(boxes[:, 0] + boxes[:, 2]) / 2 - 0.5, (boxes[:, 1] + boxes[:, 3]) / 2 - 0.5], 1
    )


def test_inner_edge_box_dropped_only_when_the_overlap_holds_it():
    tile = TileBoxes(0, 24, 32, 56, boxes=np.array([[24.0, 5, 28, 9], [24.0, 5, 40, 9]]))
    keep = drop_inner_edge_boxes(tile, shape=(64, 80), overlap=8)
    # a small box on the inner left edge is held whole by the left neighbour; a box wider
    # than the overlap is kept (no tile holds it whole)
    assert keep.tolist() == [False, True]
    # the same box on the field border is kept
    border = TileBoxes(0, 0, 32, 32, boxes=np.array([[0.0, 5, 4, 9]]))
    assert drop_inner_edge_boxes(border, shape=(64, 80), overlap=8).tolist() == [True]


def test_merge_removes_duplicates_from_overlaps():
    a = TileBoxes(0, 0, 32, 32, boxes=np.array([[20.0, 10, 24, 14]]), scores=np.array([0.9]))
    b = TileBoxes(0, 24, 32, 56, boxes=np.array([[20.5, 10, 24.5, 14]]), scores=np.array([0.8]))
    boxes, scores = merge_tile_boxes([a, b], shape=(32, 56), overlap=8)
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.9)


def test_source_on_a_tile_corner_is_found_once_at_its_position(tmp_path):
    # tiles of 32 with overlap 8 start at 0, 24, 48: the corner of four tiles is (24..32)
    sources = [(27.0, 28.0, 0.05), (10.0, 40.0, 0.05), (60.0, 12.0, 0.05)]
    path = _field(tmp_path, _sky((64, 80), sources))
    model = ThresholdDetector(0.4)
    with open_field(path) as field:
        finder = _finder(model)
        boxes, scores = finder.detect(field)
        assert finder.stats["tiles"] == 9 and finder.stats["scale_factor"] == 1.0
        # the corner source is seen by up to four tiles; after merging each source once
        assert finder.stats["raw_boxes"] > len(sources)
        assert len(boxes) == len(sources)
        found = _centres(boxes)
        for x, y, _ in sources:
            d = np.hypot(found[:, 0] - x, found[:, 1] - y)
            assert d.min() < 1.0, (x, y, found)


def test_all_nan_tiles_skipped_and_counted(tmp_path):
    data = _sky((64, 80), [(60.0, 30.0, 0.05)])
    data[:, :32] = np.nan  # the first column of tiles holds no data
    path = _field(tmp_path, data)
    with open_field(path) as field:
        finder = _finder(ThresholdDetector(0.4))
        boxes, _ = finder.detect(field)
        assert finder.stats["skipped_nan_tiles"] == 3
        assert len(boxes) == 1
        assert _centres(boxes)[0] == pytest.approx([60.0, 30.0], abs=1.0)


def test_all_nan_field_is_an_error_naming_the_file(tmp_path):
    path = _field(tmp_path, np.full((40, 40), np.nan), name="blank.fits")
    with pytest.raises(FieldError, match="blank.fits"):
        open_field(path)


def test_field_with_another_beam_in_pixels_is_resampled_and_mapped_back(tmp_path):
    # the model was "trained" at 3 px per beam; this field has 6 px per beam (1 arcsec
    # pixels, 6 arcsec beam): tiles cover 64 field pixels shown at 32
    sources = [(20.0, 30.0, 0.05), (90.0, 70.0, 0.05), (63.0, 64.0, 0.05)]
    data = _sky((128, 128), sources, sigma=2.6)
    path = _field(tmp_path, data, pixel=1.0, beam=(6.0, 6.0, 0.0))
    with open_field(path) as field:
        finder = _finder(ThresholdDetector(0.4), overlap=8)
        boxes, _ = finder.detect(field)
        assert finder.stats["scale_factor"] == pytest.approx(0.5)
        assert finder.stats["tile_pixels"] == 64
        assert len(boxes) == len(sources)
        found = _centres(boxes)
        for x, y, _ in sources:
            assert np.hypot(found[:, 0] - x, found[:, 1] - y).min() < 1.5
        # without rescaling the tiles are 32 field pixels
        plain = _finder(ThresholdDetector(0.4), rescale=False)
        plain.detect(field)
        assert plain.stats["scale_factor"] == 1.0 and plain.stats["tile_pixels"] == 32


@pytest.mark.parametrize("pixel, factor", [(2.0, 1.0), (1.0, 0.5), (4.0, 2.0)])
def test_inner_edge_margin_is_one_model_pixel_at_any_resample(tmp_path, monkeypatch, pixel, factor):
    """Boxes are called touching an inner tile edge within one pixel of the model's tiles:
    two field pixels of a field shown at half its size, half a pixel of one shown doubled."""
    import astrodet.sky.finders.detector as detector

    seen = []
    real_merge = detector.merge_tile_boxes

    def spy(tiles, **kwargs):
        seen.append(kwargs["margin"])
        return real_merge(tiles, **kwargs)

    monkeypatch.setattr(detector, "merge_tile_boxes", spy)
    data = _sky((128, 128), [(40.0, 40.0, 0.05)], sigma=1.3 * 2.0 / pixel)
    path = _field(tmp_path, data, pixel=pixel, beam=(6.0, 6.0, 0.0))
    with open_field(path) as field:
        finder = _finder(ThresholdDetector(0.4))
        finder.detect(field)
    assert finder.stats["scale_factor"] == pytest.approx(factor)
    assert seen == [pytest.approx(1.0 / factor)]
    assert finder.stats["edge_margin_pixels"] == pytest.approx(1.0 / factor)
    # a box 1.5 field pixels (0.75 model pixels) from the inner edge of a tile of a field at
    # half size: touching it, and held whole by the neighbour
    tile = TileBoxes(0, 48, 64, 112, boxes=np.array([[49.5, 5, 55, 11]]))
    assert drop_inner_edge_boxes(tile, shape=(128, 128), overlap=16, margin=2.0).tolist() == [False]


def test_catalogue_positions_from_the_wcs(tmp_path):
    sources = [(30.0, 20.0, 0.05)]
    path = _field(tmp_path, _sky((64, 64), sources))
    with open_field(path) as field:
        ra0, dec0 = field.pixel_to_world(30.0, 20.0)
        table = _finder(ThresholdDetector(0.4)).find(field)
    assert len(table) == 1
    sep = np.hypot((table["ra"][0] - ra0) * np.cos(np.deg2rad(dec0)), table["dec"][0] - dec0)
    assert sep * 3600 < 2.0  # within a pixel (2 arcsec)
    assert table.meta["FINDER"] == "detector"


def test_measured_catalogue_has_fluxes_and_snr(tmp_path):
    pytest.importorskip("astrodet.sky.measure")
    sources = [(30.0, 20.0, 0.05), (12.0, 50.0, 0.02)]
    path = _field(tmp_path, _sky((64, 64), sources))
    with open_field(path) as field:
        table = _finder(ThresholdDetector(0.4), measure=True).find(field)
    assert len(table) == 2
    order = np.argsort(-np.asarray(table["peak_flux"]))
    assert np.asarray(table["peak_flux"])[order] == pytest.approx([0.05, 0.02], rel=0.2)
    assert np.all(np.asarray(table["snr"]) > 10)
    assert np.asarray(table["x"])[order] == pytest.approx([30.0, 12.0], abs=1.0)


def test_tiles_without_a_bright_pixel_are_not_shown_to_the_network(tmp_path):
    path = _field(tmp_path, _sky((64, 80), [(10.0, 10.0, 0.05)]))
    model = ThresholdDetector(0.4)
    with open_field(path) as field:
        finder = _finder(model, min_peak_snr=5.0)
        boxes, _ = finder.detect(field)
        # only the corner tile holds the source; the other eight are noise
        assert finder.stats["tiles"] == 9 and finder.stats["empty_tiles"] == 8
        assert model.calls == 1 and len(boxes) == 1
        everything = _finder(ThresholdDetector(0.4), min_peak_snr=None)
        assert len(everything.detect(field)[0]) == 1
        assert everything.model.calls == 9


def test_detections_below_min_snr_are_left_out(tmp_path):
    # noise of 1e-3, a source at S/N 50 and one at S/N 4: a low threshold boxes both (and
    # noise peaks, all below S/N 5 in 4096 pixels)
    path = _field(tmp_path, _sky((64, 64), [(30.0, 20.0, 0.05), (12.0, 50.0, 0.004)], seed=2))
    kw = dict(measure=True, min_peak_snr=None)
    with open_field(path) as field:
        every = _finder(ThresholdDetector(0.15), min_snr=None, **kw).find(field)
        finder = _finder(ThresholdDetector(0.15), **kw)  # the default: S/N 5
        table = finder.find(field)
    snr = np.asarray(every["snr"])
    assert (snr < 5).sum() >= 1 and (snr >= 5).sum() == 1
    assert len(table) == 1 and table["snr"][0] > 40 and table["x"][0] == pytest.approx(30, abs=1)
    assert finder.stats["below_min_snr"] == len(every) - 1
    assert list(table["source_id"]) == [0] and table.meta["MINSNR"] == 5.0
