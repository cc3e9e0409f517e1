"""Source catalogues: our format round trips, PyBDSF and Aegean readers, COCO boxes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from astrodet.sky.catalogue import (
    COLUMNS,
    UNITS,
    CatalogueError,
    catalogue_beam,
    catalogue_to_boxes,
    catalogue_to_coco,
    coco_to_catalogue,
    new_catalogue,
    read_catalogue,
    write_catalogue,
)


def _wcs(scale_arcsec=2.0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [150.0, -30.0]
    w.wcs.crpix = [51.0, 51.0]
    w.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return w


def _catalogue():
    return new_catalogue(
        ra=[150.0, 150.01, 149.99],
        dec=[-30.0, -30.005, -29.99],
        x=[50.0, 20.0, 70.0],
        y=[50.0, 41.0, 68.0],
        peak_flux=[1e-3, 2e-3, 5e-4],
        total_flux=[1.5e-3, 2e-3, 9e-4],
        maj=[10.0, 8.0, 12.0],
        min=[6.0, 8.0, 4.0],
        pa=[30.0, 0.0, 120.0],
        rms=[1e-4, 1e-4, 1e-4],
        snr=[10.0, 20.0, 5.0],
        meta={"BEAM_MAJ": 8.0, "BEAM_MIN": 8.0, "BEAM_PA": 0.0, "IMAGE": "field.fits"},
    )


def test_new_catalogue_fills_defaults_and_units():
    t = new_catalogue(x=[1.0, 2.0], y=[3.0, 4.0])
    assert tuple(t.colnames) == COLUMNS
    assert list(t["source_id"]) == [0, 1] and list(t["score"]) == [1.0, 1.0]
    assert np.isnan(t["ra"]).all() and np.isnan(t["peak_flux"]).all()
    for name, unit in UNITS.items():
        assert (str(t[name].unit) if t[name].unit else "") == str(
            __import__("astropy.units", fromlist=["Unit"]).Unit(unit) if unit else ""
        )
    with pytest.raises(ValueError, match="differ in length"):
        new_catalogue(x=[1.0], y=[1.0, 2.0])


def test_round_trip_fits_csv_and_regions(tmp_path):
    t = _catalogue()
    paths = write_catalogue(t, tmp_path / "cat")
    assert sorted(paths) == ["csv", "fits", "reg"]
    for fmt in ("fits", "csv"):
        back = read_catalogue(paths[fmt])
        assert len(back) == 3 and tuple(back.colnames) == COLUMNS
        for name in COLUMNS:
            np.testing.assert_allclose(np.asarray(back[name], float), np.asarray(t[name], float))
            assert back[name].unit == t[name].unit
    # the meta travels in the FITS table; the CSV is plain
    back = read_catalogue(paths["fits"])
    assert catalogue_beam(back) == (8.0, 8.0, 0.0)
    assert back.meta["IMAGE"] == "field.fits" and back.meta["SIZES"] == "convolved"
    from regions import EllipseSkyRegion, Regions

    regs = Regions.read(paths["reg"], format="ds9")
    assert len(regs) == 3 and all(isinstance(r, EllipseSkyRegion) for r in regs)
    r = regs[0]
    assert r.width.to_value("arcsec") == pytest.approx(10.0, abs=1e-3)  # 8 decimals of a degree
    assert r.height.to_value("arcsec") == pytest.approx(6.0, abs=1e-3)
    assert r.angle.to_value("deg") == pytest.approx(120.0)  # PA 30 east of north
    assert r.center.ra.deg == pytest.approx(150.0)


def test_csv_is_plain_for_astropy_and_pandas(tmp_path):
    t = _catalogue()
    t["island_id"] = [0, 0, 1]
    path = write_catalogue(t, tmp_path / "cat", formats=["csv"])["csv"]
    text = path.read_text()
    assert text.splitlines()[0].startswith("source_id,ra,dec,")  # the header row first
    assert "#" not in text
    for table in (Table.read(path), Table.read(path, format="ascii.csv")):
        assert table.colnames == [*COLUMNS, "island_id"] and len(table) == 3
        np.testing.assert_allclose(table["total_flux"], t["total_flux"])
    assert list(read_catalogue(path)["island_id"]) == [0, 0, 1]
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(path)
    assert list(frame.columns) == [*COLUMNS, "island_id"] and len(frame) == 3
    np.testing.assert_allclose(frame["maj"], t["maj"])


def test_older_commented_csv_is_still_read_with_its_meta(tmp_path):
    t = _catalogue()
    buf = io.StringIO()
    t.copy(copy_data=False).write(buf, format="ascii.csv")
    lines = "".join(f"# {k} = {v}\n" for k, v in t.meta.items())
    (tmp_path / "old.csv").write_text(lines + buf.getvalue())
    back = read_catalogue(tmp_path / "old.csv")
    assert len(back) == 3 and catalogue_beam(back) == (8.0, 8.0, 0.0)
    assert back.meta["IMAGE"] == "field.fits"
    np.testing.assert_allclose(back["snr"], t["snr"])


def test_optional_columns_round_trip_with_units(tmp_path):
    t = new_catalogue(
        ra=[1.0, 2.0], dec=[3.0, 4.0], island_id=[5, 5], dc_maj=[2.0, np.nan], dc_min=[1.0, 0.5]
    )
    assert t["dc_maj"].unit == "arcsec" and t["island_id"].dtype.kind == "i"
    back = read_catalogue(write_catalogue(t, tmp_path / "c", formats=["fits"])["fits"])
    assert list(back["island_id"]) == [5, 5] and back["dc_maj"].unit == "arcsec"
    np.testing.assert_allclose(back["dc_maj"], [2.0, np.nan])


def test_pixel_regions_without_sky_positions(tmp_path):
    t = new_catalogue(x=[5.0], y=[7.0], maj=[4.0], min=[2.0], pa=[0.0], meta={"PIXSCALE": 2.0})
    paths = write_catalogue(t, tmp_path / "pix", formats=["reg"])
    from regions import EllipsePixelRegion, Regions

    (r,) = Regions.read(paths["reg"], format="ds9")
    assert isinstance(r, EllipsePixelRegion)
    assert (r.center.x, r.center.y, r.width, r.height) == pytest.approx((5.0, 7.0, 2.0, 1.0))


def test_write_refuses_to_overwrite(tmp_path):
    t = _catalogue()
    write_catalogue(t, tmp_path / "cat", formats=["csv"])
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_catalogue(t, tmp_path / "cat", formats=["csv", "fits"])
    assert not (tmp_path / "cat.fits").exists()  # nothing written when one exists
    write_catalogue(t, tmp_path / "cat", formats=["csv"], overwrite=True)


@pytest.mark.parametrize("name", ["catalogue.srl", "catalogue.gaul"])
def test_real_pybdsf_fits_and_ascii_agree(real_data, name):
    folder = real_data / "pybdsf_test"
    ascii_t = read_catalogue(folder / name)
    fits_t = read_catalogue(folder / f"{name}.FITS")
    raw = Table.read(folder / f"{name}.FITS")
    assert (
        len(ascii_t) == len(fits_t) == len(raw) == {"catalogue.srl": 43, "catalogue.gaul": 48}[name]
    )
    for col in ("ra", "dec", "peak_flux", "total_flux", "maj", "min", "pa", "rms", "snr"):
        np.testing.assert_allclose(ascii_t[col], fits_t[col], rtol=1e-6, err_msg=col)
    # Our units: sizes in arcsec from PyBDSF's degrees, positions and fluxes as they were.
    np.testing.assert_allclose(fits_t["maj"], np.asarray(raw["Maj"]) * 3600.0)
    np.testing.assert_allclose(fits_t["total_flux"], np.asarray(raw["Total_flux"]))
    np.testing.assert_allclose(fits_t["rms"], np.asarray(raw["Isl_rms"]))
    np.testing.assert_allclose(
        fits_t["snr"], np.asarray(raw["Peak_flux"]) / np.asarray(raw["Isl_rms"])
    )
    assert fits_t.meta["CATFMT"] == "pybdsf"
    if name == "catalogue.gaul":  # the Gaussian list carries pixel positions
        np.testing.assert_allclose(fits_t["x"], np.asarray(raw["Xposn"]))
        assert np.isfinite(fits_t["x"]).all()


def test_real_pybdsf_positions_match_the_image_wcs(real_data):
    from astrodet.sky.field import open_field

    folder = real_data / "pybdsf_test"
    t = read_catalogue(folder / "catalogue.gaul.FITS")
    with open_field(folder / "ch0_I.fits") as f:
        x, y = f.world_to_pixel(t["ra"], t["dec"])
    # Xposn/Yposn are 0-based pixels (1-based would be off by a whole pixel). Columns agree
    # exactly; rows drift from astropy's by up to 0.6 px towards the top of this reference
    # output (whose origin is undocumented).
    np.testing.assert_allclose(x, t["x"], atol=1e-3)
    assert np.abs(y - t["y"]).max() < 0.75


@pytest.mark.parametrize("name", ["catalogue.gaul", "catalogue.gaul.FITS"])
def test_real_gaussian_list_ids_are_unique_and_keep_pybdsfs(real_data, name):
    raw = Table.read(real_data / "pybdsf_test" / "catalogue.gaul.FITS")
    t = read_catalogue(real_data / "pybdsf_test" / name)
    # 48 Gaussians of 43 sources: PyBDSF's Source_id repeats, ours does not
    assert len(np.unique(np.asarray(raw["Source_id"]))) < len(raw)
    assert list(t["source_id"]) == list(range(len(raw)))
    assert list(t["gaus_id"]) == list(np.asarray(raw["Gaus_id"]))
    assert list(t["pybdsf_source_id"]) == list(np.asarray(raw["Source_id"]))
    assert list(t["island_id"]) == list(np.asarray(raw["Isl_id"]))


def test_gaussian_ids_restarting_in_each_island(tmp_path):
    # a Gaussian list whose Gaus_id restarts in each island (as some PyBDSF outputs write)
    text = (
        "# Gaussian list\n"
        "# Gaus_id Isl_id Source_id RA DEC Total_flux Peak_flux Maj Min PA Isl_rms\n"
        "0 0 0 150.000 2.0 0.010 0.008 0.002 0.0015 10 0.0001\n"
        "1 0 0 150.001 2.0 0.005 0.004 0.002 0.0015 10 0.0001\n"
        "0 1 1 150.010 2.0 0.003 0.003 0.0015 0.0015 0 0.0001\n"
        "1 1 1 150.011 2.0 0.002 0.002 0.0015 0.0015 0 0.0001\n"
    )
    (tmp_path / "c.gaul").write_text(text)
    t = read_catalogue(tmp_path / "c.gaul")
    assert list(t["source_id"]) == [0, 1, 2, 3]
    pairs = list(zip(t["island_id"].tolist(), t["gaus_id"].tolist()))
    assert pairs == [(0, 0), (0, 1), (1, 0), (1, 1)] and len(set(pairs)) == 4
    np.testing.assert_allclose(t["maj"], [7.2, 7.2, 5.4, 5.4])


def test_real_pybdsf_sizes_convolved_and_deconvolved(real_data):
    raw = Table.read(real_data / "pybdsf_test" / "catalogue.srl.FITS")
    t = read_catalogue(real_data / "pybdsf_test" / "catalogue.srl.FITS")
    assert t.meta["SIZES"] == "convolved"
    np.testing.assert_allclose(t["maj"], np.asarray(raw["Maj"]) * 3600.0)
    np.testing.assert_allclose(t["dc_maj"], np.asarray(raw["DC_Maj"]) * 3600.0)
    np.testing.assert_allclose(t["dc_min"], np.asarray(raw["DC_Min"]) * 3600.0)
    np.testing.assert_allclose(t["dc_pa"], np.asarray(raw["DC_PA"]))
    # fitted sizes include the beam: never smaller than the deconvolved ones
    assert np.all(np.asarray(t["maj"]) >= np.nan_to_num(np.asarray(t["dc_maj"])) - 1e-6)
    assert list(t["island_id"]) == list(np.asarray(raw["Isl_id"]))


def _first_vizier(**sizes):
    t = Table({"RAJ2000": [150.0], "DEJ2000": [2.0], "Fpeak": [5.0], "Fint": [6.0], **sizes})
    for name in sizes:
        t[name].unit = "deg" if name.endswith("PA") else "arcsec"
    return t


def test_published_tables_map_fitted_and_deconvolved_sizes(tmp_path):
    # VizieR's FIRST: fMaj/fMin/fPA fitted, Maj/Min/PA deconvolved
    _first_vizier(Maj=[2.0], Min=[0.0], PA=[30.0], fMaj=[6.1], fMin=[5.4], fPA=[28.0]).write(
        tmp_path / "first.fits"
    )
    t = read_catalogue(tmp_path / "first.fits")
    assert t.meta["SIZES"] == "convolved"
    assert (t["maj"][0], t["min"][0], t["pa"][0]) == (6.1, 5.4, 28.0)
    assert (t["dc_maj"][0], t["dc_min"][0], t["dc_pa"][0]) == (2.0, 0.0, 30.0)
    # deconvolved only (FIRST without fMaj; NVSS's MajAxis): said so, not taken as fitted
    for name, cols in (
        ("first_dc", {"Maj": [2.0], "Min": [1.0], "PA": [30.0]}),
        ("nvss", {"MajAxis": [20.0], "MinAxis": [10.0], "PA": [-5.0]}),
    ):
        _first_vizier(**cols).write(tmp_path / f"{name}.fits")
        t = read_catalogue(tmp_path / f"{name}.fits")
        assert t.meta["SIZES"] == "deconvolved", name
        first = next(iter(cols.values()))[0]
        assert t["maj"][0] == t["dc_maj"][0] == first
    # a PyBDSF-made survey list (LoTSS-like): Maj fitted beside DC_Maj
    _first_vizier(Maj=[7.0], Min=[6.0], PA=[0.0], DC_Maj=[3.0], DC_Min=[1.0], DC_PA=[5.0]).write(
        tmp_path / "lotss.fits"
    )
    t = read_catalogue(tmp_path / "lotss.fits")
    assert t.meta["SIZES"] == "convolved" and (t["maj"][0], t["dc_maj"][0]) == (7.0, 3.0)


def test_selavy_fitted_and_deconvolved_sizes_and_text_islands(tmp_path):
    Table(
        {
            "island_id": ["SB1_island_10", "SB1_island_9", "SB1_island_10"],
            "ra_deg_cont": [150.0, 150.02, 150.001],
            "dec_deg_cont": [-30.0, -30.01, -30.0],
            "flux_peak": [2.0, 1.0, 1.5],
            "flux_int": [3.0, 1.0, 2.0],
            "maj_axis": [12.0, 8.0, 9.0],
            "min_axis": [8.0, 8.0, 8.0],
            "pos_ang": [45.0, 0.0, 10.0],
            "maj_axis_deconv": [9.0, 0.0, 3.0],
            "min_axis_deconv": [1.0, 0.0, 0.0],
            "pos_ang_deconv": [44.0, 0.0, 12.0],
        }
    ).write(tmp_path / "selavy.csv", format="ascii.csv")
    t = read_catalogue(tmp_path / "selavy.csv")
    assert t.meta["SIZES"] == "convolved"
    np.testing.assert_allclose(t["maj"], [12.0, 8.0, 9.0])
    np.testing.assert_allclose(t["dc_maj"], [9.0, 0.0, 3.0])
    np.testing.assert_allclose(t["dc_pa"], [44.0, 0.0, 12.0])
    # text island names become numbers, in order of appearance: one island of two
    assert list(t["island_id"]) == [0, 1, 0]


@pytest.mark.parametrize("fmt", ["fits", "csv", "votable"])
def test_aegean_table(tmp_path, fmt):
    t = Table(
        {
            "island": [1, 2],
            "source": [0, 0],
            "ra": [150.0, 150.02],
            "dec": [-30.0, -30.01],
            "peak_flux": [2e-3, 1e-3],
            "int_flux": [3e-3, 1e-3],
            "a": [12.0, 8.0],
            "b": [8.0, 8.0],
            "pa": [45.0, 0.0],
            "local_rms": [1e-4, 2e-4],
        }
    )
    path = tmp_path / {"fits": "a.fits", "csv": "a.csv", "votable": "a.vot"}[fmt]
    t.write(path, format={"fits": "fits", "csv": "ascii.csv", "votable": "votable"}[fmt])
    cat = read_catalogue(path)
    assert cat.meta["CATFMT"] == "aegean"
    assert list(cat["island_id"]) == [1, 2]
    np.testing.assert_allclose(cat["total_flux"], [3e-3, 1e-3])
    np.testing.assert_allclose(cat["maj"], [12.0, 8.0])
    np.testing.assert_allclose(cat["snr"], [20.0, 5.0])
    assert np.isnan(cat["x"]).all()


def test_aegean_units_in_the_file_win(tmp_path):
    t = Table(
        {"ra": [1.0], "dec": [2.0], "peak_flux": [1.0], "int_flux": [2.0], "a": [0.5], "b": [0.25]}
    )
    t["a"].unit = t["b"].unit = "arcmin"
    t.write(tmp_path / "arcmin.fits")
    cat = read_catalogue(tmp_path / "arcmin.fits")
    assert cat["maj"][0] == pytest.approx(30.0) and cat["min"][0] == pytest.approx(15.0)


@pytest.mark.parametrize("fmt", ["votable", "csv"])
def test_selavy_components_in_mjy(tmp_path, fmt):
    t = Table(
        {
            "component_id": ["SB1_component_1a", "SB1_component_2a"],
            "ra_deg_cont": [150.0, 150.02],
            "dec_deg_cont": [-30.0, -30.01],
            "flux_peak": [2.0, 1.0],
            "flux_int": [3.0, 1.0],
            "maj_axis": [12.0, 8.0],
            "min_axis": [8.0, 8.0],
            "pos_ang": [45.0, 0.0],
            "rms_image": [0.1, 0.2],
        }
    )
    path = tmp_path / f"selavy.{fmt}"
    if fmt == "votable":
        for c in ("flux_peak", "rms_image"):
            t[c].unit = "mJy/beam"
        t["flux_int"].unit = "mJy"
    t.write(path, format="votable" if fmt == "votable" else "ascii.csv")
    cat = read_catalogue(path)  # units from the file, or Selavy's mJy without them
    assert cat.meta["CATFMT"] == "selavy"
    np.testing.assert_allclose(cat["peak_flux"], [2e-3, 1e-3])
    np.testing.assert_allclose(cat["total_flux"], [3e-3, 1e-3])
    np.testing.assert_allclose(cat["snr"], [20.0, 5.0])
    np.testing.assert_allclose(cat["ra"], [150.0, 150.02])
    assert list(cat["source_id"]) == [0, 1]  # text ids: renumbered


def test_survey_table_sexagesimal_positions_and_mjy(tmp_path):
    # a FIRST-like table as VizieR serves it: text positions, fluxes in mJy
    t = Table(
        {
            "RAJ2000": ["10 00 00.000", "09 59 57.600"],
            "DEJ2000": ["-30 00 00.00", "+02 30 36.0"],
            "Fpeak": [5.0, 1.0],
            "Fint": [6.0, 1.5],
            "Rms": [0.15, 0.2],
            "Maj": [6.0, 0.0],
            "Min": [5.4, 0.0],
            "PA": [12.0, 0.0],
        }
    )
    t["Fpeak"].unit = t["Rms"].unit = "mJy/beam"
    t["Fint"].unit = "mJy"
    t.write(tmp_path / "first.fits")
    cat = read_catalogue(tmp_path / "first.fits")
    assert cat.meta["CATFMT"] == "survey"
    np.testing.assert_allclose(cat["ra"], [150.0, 149.99], atol=1e-9)
    np.testing.assert_allclose(cat["dec"], [-30.0, 2.51], atol=1e-9)
    np.testing.assert_allclose(cat["peak_flux"], [5e-3, 1e-3])
    np.testing.assert_allclose(cat["snr"], [5e-3 / 1.5e-4, 5.0])
    np.testing.assert_allclose(cat["maj"], [6.0, 0.0])


def test_survey_table_without_noise_has_unknown_snr(tmp_path):
    # NVSS-like: degrees, integrated flux only
    Table({"RAJ2000": [150.0], "DEJ2000": [-30.0], "S1.4": [12.5]}).write(
        tmp_path / "nvss.csv", format="ascii.csv"
    )
    cat = read_catalogue(tmp_path / "nvss.csv")
    assert cat["total_flux"][0] == pytest.approx(0.0125)
    assert np.isnan(cat["snr"][0]) and np.isnan(cat["peak_flux"][0])


def test_bad_sexagesimal_position_names_the_column(tmp_path):
    Table({"RAJ2000": ["ten o'clock"], "DEJ2000": ["-30 00 00"]}).write(
        tmp_path / "bad.csv", format="ascii.csv"
    )
    with pytest.raises(CatalogueError, match=r"bad\.csv.*RAJ2000"):
        read_catalogue(tmp_path / "bad.csv")


def test_missing_columns_error_lists_the_columns(tmp_path):
    Table({"name": ["a"], "flux": [1.0]}).write(tmp_path / "bad.csv", format="ascii.csv")
    with pytest.raises(CatalogueError, match=r"bad\.csv.*columns name, flux"):
        read_catalogue(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError):
        read_catalogue(tmp_path / "none.fits")


def test_coco_boxes_use_the_mgcls_convention():
    from astrodet.data.mgcls import ellipse_pixel_boxes

    wcs = _wcs()
    t = new_catalogue(ra=[150.0], dec=[-30.0], maj=[20.0], min=[10.0], pa=[0.0])
    (box,) = catalogue_to_boxes(t, wcs=wcs)
    # North-south major axis (pa 0) of 20" at 2"/px: 10 px tall, 5 px wide, centred on the
    # reference pixel (0-based 50), shifted by half a pixel to COCO's convention.
    assert box == pytest.approx([48.0, 45.5, 53.0, 55.5], abs=0.05)
    _, ref = ellipse_pixel_boxes(
        wcs,
        {
            "ra": np.array([150.0]),
            "dec": np.array([-30.0]),
            "maj": np.array([20 / 3600]),
            "min": np.array([10 / 3600]),
            "pa": np.array([0.0]),
        },
    )
    np.testing.assert_allclose(box, ref[0] + 0.5)
    (ann,) = catalogue_to_coco(t, wcs=wcs, image_id=7)
    assert ann["image_id"] == 7 and ann["bbox"] == pytest.approx([48.0, 45.5, 5.0, 10.0], abs=0.05)
    (flipped,) = catalogue_to_boxes(t, wcs=wcs, display_height=100)
    assert flipped == pytest.approx([48.0, 100 - 55.5, 53.0, 100 - 45.5], abs=0.05)


def test_coco_predictions_to_catalogue_and_back():
    wcs = _wcs()
    t = new_catalogue(
        ra=[150.0, 150.005], dec=[-30.0, -29.995], maj=[20.0, 12.0], min=[10.0, 6.0], pa=[0.0, 90.0]
    )
    anns = catalogue_to_coco(t, wcs=wcs)
    for a, s in zip(anns, (0.9, 0.4)):
        a["score"] = s
    back = coco_to_catalogue(anns, wcs=wcs, pixel_scale=2.0)
    np.testing.assert_allclose(back["ra"], t["ra"], atol=1e-6)
    np.testing.assert_allclose(back["dec"], t["dec"], atol=1e-6)
    np.testing.assert_allclose(back["maj"], t["maj"], rtol=0.02)
    np.testing.assert_allclose(back["pa"], t["pa"])
    np.testing.assert_allclose(back["score"], [0.9, 0.4])
    # An array of XYXY boxes in a tile at (100, 200) of the field.
    arr = coco_to_catalogue(np.array([[0.0, 0.0, 4.0, 2.0]]), offset=(100, 200))
    assert (arr["x"][0], arr["y"][0], arr["maj"][0], arr["pa"][0]) == (101.5, 200.5, 4.0, 90.0)
