"""RGZ consensus (sources, duplicated catalogue entries, boxes) and the RGZ/FIRST detection
set built from the shared real data: the six classes, boxes around their components, and
splits that share no sky."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from astrodet.data import DatasetCatalog, MetadataCatalog
from astrodet.data import rgz_consensus as rc
from astrodet.data import rgz_first as rf
from astrodet.data.rgz import RGZ_CLASSES

HEADER = "catalog_id,first_id,num_cpnts,num_peaks,cpnts_ras,cpnts_decs,ang_extent,cl,training\n"


def _catalogue(tmp_path, rows: list[str], *, tgz: bool = False):
    text = HEADER + "".join(r + "\n" for r in rows)
    if not tgz:
        path = tmp_path / "full_catalogue.csv"
        path.write_text(text)
        return path
    path = tmp_path / "full_catalogue.csv.tgz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("full_catalogue.csv")
        info.size = len(text.encode())
        tar.addfile(info, io.BytesIO(text.encode()))
    return path


# ------------------------------------------------------------------------------ catalogue
def test_sources_parse_components_and_claran_split(tmp_path):
    path = _catalogue(
        tmp_path,
        [
            "1,FIRSTJ000000.0+100000,2,3,10.0;10.01,20.0;20.01,40.0,0.8,0",
            "2,FIRSTJ000100.0+100000,1,1,11.0,21.0,10.0,0.9,1",
        ],
        tgz=True,
    )
    a, b = rc.read_rgz_sources(path)
    assert a["class"] == "2C_3P" and a["claran_split"] == "test" and len(a["ra"]) == 2
    assert b["class"] == "1C_1P" and b["claran_split"] == "train"
    np.testing.assert_allclose(a["dec"], [20.0, 20.01])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("7,FIRSTJ1,4,4,1;2;3;4,1;2;3;4,40.0,0.8,1", "7 \\(FIRSTJ1\\).*not one of the six"),
        ("8,FIRSTJ2,2,2,10.0,20.0,40.0,0.8,1", "8 \\(FIRSTJ2\\).*num_cpnts is 2 but it lists 1"),
        ("9,FIRSTJ3,1,1,ten,20.0,40.0,0.8,1", "9 \\(FIRSTJ3\\).*cpnts_ras 'ten'"),
    ],
)
def test_bad_sources_are_errors_naming_them(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        rc.read_rgz_sources(_catalogue(tmp_path, [row]))


def test_duplicate_entries_become_one_source(tmp_path):
    path = _catalogue(
        tmp_path,
        [
            # the same double listed from two subjects; the test entry's split wins
            "1,FIRSTJA,2,2,10.0;10.01,20.0;20.01,40.0,0.7,1",
            "2,FIRSTJB,2,3,10.0;10.01,20.0;20.01,40.0,0.9,0",
            # volunteers of another subject saw one lobe alone: a conflict, lower consensus
            "3,FIRSTJC,1,1,10.01,20.01,10.0,0.6,1",
            "4,FIRSTJD,1,1,30.0,20.0,10.0,0.6,1",
        ],
    )
    kept, counts = rc.unique_rgz_sources(rc.read_rgz_sources(path))
    assert [s["catalog_id"] for s in kept] == [2, 4]
    assert kept[0]["duplicates"] == [1, 3] and kept[0]["class"] == "2C_3P"
    assert kept[0]["claran_split"] == "test"
    assert counts == {
        "duplicates": 1,
        "duplicates_other_class": 1,
        "conflicts": 1,
        "claran_split_disagreements": 2,
    }


# ------------------------------------------------------------------------------ boxes
def test_consensus_box_follows_connected_emission_within_reach():
    from scipy.ndimage import label

    mask = np.zeros((100, 100), bool)
    mask[45:55, 20:31] = True  # west lobe, x 20..30
    mask[47:53, 60:72] = True  # east lobe, x 60..71
    mask[49:51, 72:99] = True  # a faint bridge to a neighbour beyond the source's reach
    labels = label(mask, np.ones((3, 3)))[0]
    comps = np.array([[25.0, 50.0], [65.0, 50.0]])
    box = rc.consensus_box(labels=labels, components=comps, ang_extent_px=50.0)
    # west edge from the lobe's emission; the east edge stops at the reach: centre 45 +
    # half the extent 25 + two beams 6 = 76
    assert box[0] == 20.0 and box[1] == 45.0 and box[3] == 55.0
    assert 71.0 <= box[2] <= 77.0
    # a component without emission still gets a beam-sized box
    alone = rc.consensus_box(
        labels=np.zeros((50, 50), int), components=[[10.0, 12.0]], ang_extent_px=5.0
    )
    np.testing.assert_allclose(alone, [7.5, 9.5, 13.5, 15.5])


# ------------------------------------------------------------------------------ real set
@pytest.fixture(scope="module")
def built(real_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("rgz_first") / "set"
    rf.build_rgz_first(root, real_data=real_data, report=False)
    return root


def _coco(root, split):
    return json.loads((root / split / "annotations.json").read_text())


@pytest.mark.real_data
@pytest.mark.slow
def test_set_builds_with_six_classes_and_boxes_around_components(built):
    summary = json.loads((built / "summary.json").read_text())
    for split in ("train", "test"):
        coco = _coco(built, split)
        assert [c["name"] for c in coco["categories"]] == RGZ_CLASSES
        assert coco["images"] and coco["annotations"]
        counts = summary["splits"][split]
        n_whole = sum(not a["iscrowd"] for a in coco["annotations"])
        assert n_whole == sum(sum(v.values()) for v in counts["sources"].values())
        assert len(coco["images"]) == sum(counts["tiles"].values())
        for im in coco["images"]:
            assert (built / split / "images" / im["file_name"]).is_file()
            assert (built / im["fits_file"]).is_file()
            assert im["kind"] in rf.KINDS and im["clipped"] == (
                im["kind"].endswith("png") or im["kind"] == "first_radio_galaxy"
            )
        for a in coco["annotations"]:
            x, y, w, h = a["bbox"]
            comps = np.asarray(a["rgz"]["components"])
            assert w > 0 and h > 0 and 1 <= a["category_id"] <= 6
            inside = (comps[:, 0] >= x) & (comps[:, 0] <= x + w)
            inside &= (comps[:, 1] >= y) & (comps[:, 1] <= y + h)
            assert inside.all(), a
            if not a["iscrowd"]:  # a whole source has all its components in the image
                assert len(comps) == int(RGZ_CLASSES[a["category_id"] - 1][0])
    # every image kind of FIRST with positions contributed; FR-DEEP was skipped and counted
    assert all(summary["images"][k]["with_rgz_source"] > 0 for k in rf.KINDS)
    assert summary["skipped_images"]["frdeep_no_position"] == 600
    assert summary["rgz_outside_every_image"] > 10000
    assert summary["catalogue"]["duplicates"] > 0


@pytest.mark.real_data
@pytest.mark.slow
def test_no_sky_position_in_both_splits_and_claran_test_is_test(built):
    from astropy.io import fits
    from astropy.wcs import WCS

    def footprints(split):
        out = []
        for im in _coco(built, split)["images"]:
            out.append(WCS(fits.getheader(built / im["fits_file"])).celestial)
        return out

    train, test = footprints("train"), footprints("test")
    grid = np.arange(-0.5, 100, 10.0)
    gx, gy = np.meshgrid(grid, grid)
    centres = np.array([w.all_pix2world(49.5, 49.5, 0) for w in train])
    for w in test:
        ra, dec = w.all_pix2world(gx.ravel(), gy.ravel(), 0)
        near = np.hypot(
            (centres[:, 0] - ra.mean()) * np.cos(np.radians(dec.mean())), centres[:, 1] - dec.mean()
        )
        for k in np.flatnonzero(near < 0.1):
            x, y = train[k].all_world2pix(ra, dec, 0)
            assert not ((x > -0.5) & (x < 99.5) & (y > -0.5) & (y < 99.5)).any()
    ids = {
        split: {a["rgz"]["catalog_id"] for a in _coco(built, split)["annotations"]}
        for split in ("train", "test")
    }
    assert not ids["train"] & ids["test"]
    assert all(a["rgz"]["claran_split"] == "train" for a in _coco(built, "train")["annotations"])


@pytest.mark.real_data
@pytest.mark.slow
def test_registered_and_rebuilt_only_when_asked(built, real_data):
    assert "rgz_first_det_train" in DatasetCatalog.list()
    assert MetadataCatalog.get("rgz_first_det_test").thing_classes == RGZ_CLASSES
    # the classification set keeps its name
    assert MetadataCatalog.get("rgz_first_train").task == "classification"
    stamp = (built / "summary.json").stat().st_mtime_ns
    assert rf.build_rgz_first(built, real_data=real_data, report=False) == built
    assert (built / "summary.json").stat().st_mtime_ns == stamp
    dicts = rf.load_rgz_first_coco(built / "test" / "annotations.json", built / "test" / "images")
    assert len(dicts) == len(_coco(built, "test")["images"])
    image = np.load(dicts[0]["file_name"])
    assert image.shape == (rf.RGZ_FIRST_TILE, rf.RGZ_FIRST_TILE) and image.dtype == np.float32
