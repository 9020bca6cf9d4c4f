"""The paper's tables: deterministic, strength found for a target PSNR, every layout runs, CLI writes reports."""
import json

import pytest
from PIL import Image
from skimage import data as skdata

from mbrs_engine import Watermarker
from mbrs_engine.cli import main
from mbrs_engine.paper_tables import paper_table

NAMES = ["astronaut", "coffee", "chelsea", "rocket"]


@pytest.fixture(scope="module")
def images():
    return [(n, Image.fromarray(getattr(skdata, n)())) for n in NAMES]


@pytest.fixture(scope="module")
def wm(tiny_model_path):
    return Watermarker.from_pretrained(str(tiny_model_path))


def test_table1_deterministic_and_sane(wm, images):
    a, b = paper_table(wm, images, "1"), paper_table(wm, images, "1")
    assert a.rows == b.rows and len(a.rows) == 1
    row = a.rows[0]
    assert 10 < row["psnr"] < 60 and 0 < row["ssim"] <= 1 and 0 <= row["ber"]["RealJpeg(50)"] <= 1
    assert "| paper |" in a.to_markdown() and "36.49" in a.to_markdown()


def test_target_psnr_sets_the_strength(wm, images):
    result = paper_table(wm, images, "6", target_psnr=30.0)
    assert abs(result.rows[0]["psnr"] - 30.0) < 0.05
    bers = [result.rows[0]["ber"][a] for a in result.attacks]      # Q = 90 .. 10: harder to the right
    assert bers[0] <= bers[-1]


def test_table3_sweep_and_table2_attacks(wm, images):
    t3 = paper_table(wm, images[:2], "3")
    assert [r["strength"] for r in t3.rows] == [0.6, 0.8, 1.0, 1.2, 1.4, 2.0, 2.4]
    psnrs = [r["psnr"] for r in t3.rows]
    assert psnrs == sorted(psnrs, reverse=True)                      # stronger -> lower PSNR
    t2 = paper_table(wm, images[:2], "2")
    assert t2.rows[0]["ber"]["Identity()"] <= t2.rows[0]["ber"]["Crop(0.035)"]
    assert t3.to_csv().count("\n") == 8


def test_bad_table(wm, images):
    with pytest.raises(ValueError, match="unknown table"):
        paper_table(wm, images, "9")


def test_cli_paper_table(tiny_model_path, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in NAMES[:2]:
        Image.fromarray(getattr(skdata, n)()).save(folder / f"{n}.png")
    out = tmp_path / "out"
    assert main(["eval", str(folder), "--paper-table", "1", "--model", str(tiny_model_path), "--out", str(out)]) == 0
    assert json.loads((out / "table1.json").read_text())["images"] == 2
    assert (out / "table1.md").read_text().startswith("Table 1 layout")
