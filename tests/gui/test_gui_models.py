"""The Models tab: list with H, L and capacity, set the default, import a pair, measure, bad imports."""
from __future__ import annotations

import json

from conftest import wait_idle

from PySide6.QtWidgets import QMessageBox

from mbrs_engine.model_files import default_model_name, shipped_models_dir, user_models_dir


def rows(tab) -> dict[str, list[str]]:
    table = tab.table
    return {table.item(r, 1).text(): [table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())}


def test_list_import_and_set_default(qtbot, window, dialogs, tiny_model_path, tiny_wm):
    tab = window.models
    window.tabs.setCurrentWidget(tab)
    listed = rows(tab)
    assert listed["tiny"][:6] == ["★", "tiny", "user", "32", "256", f"{tiny_wm.capacity} chars"]
    assert "Your models:" in tab.where.text()

    dialogs.texts = ["tiny-copy"]  # the name is taken: the user types another
    tab.import_model(tiny_model_path)
    wait_idle(qtbot, window)
    assert "tiny-copy" in rows(tab)

    tab.table.selectRow(list(rows(tab)).index("tiny-copy"))
    tab.default_button.click()  # its file records no validation: the app asks first (and the user agrees)
    assert "never validated" in dialogs.questions[-1]
    assert default_model_name() == "tiny-copy"
    assert rows(tab)["tiny-copy"][0] == "★" and rows(tab)["tiny"][0] == ""
    qtbot.waitUntil(lambda: window.ctx.models.wm is not None and window.ctx.models.wm.name == "tiny-copy",
                    timeout=20_000)
    assert "tiny-copy" in window.model_label.text()
    assert "tiny-copy" in tab.details.toPlainText()


def test_importing_a_damaged_model_gives_a_dialog(qtbot, window, dialogs, tiny_model_path, tmp_path):
    bad = tmp_path / "bad.json"
    data = json.loads(tiny_model_path.read_text())
    data["weights"]["sha256"] = "0" * 64
    bad.write_text(json.dumps(data))
    (tmp_path / data["weights"]["file"]).write_bytes(tiny_model_path.with_suffix(".safetensors").read_bytes())
    window.models.import_model(bad)
    wait_idle(qtbot, window)
    assert dialogs.errors() and "SHA-256" in dialogs.errors()[-1][1]
    assert "bad" not in rows(window.models)


def test_measure_fills_psnr_and_ber(qtbot, window, photo_folder):
    tab = window.models
    info = tab.selected()
    assert info.name == "tiny" and rows(tab)["tiny"][6] == "–"
    tab.measure(info, photo_folder)
    wait_idle(qtbot, window, timeout=120_000)
    psnr, ber = rows(tab)["tiny"][6:8]
    assert psnr.endswith("dB") and ber.endswith("%")


def test_the_shipped_default_shows_its_psnr_and_ber_and_a_user_model_can_be_removed(qtbot, window, dialogs,
                                                                                     tiny_model_path):
    tab = window.models
    shipped = rows(tab)["default"]
    recorded = json.loads((shipped_models_dir() / "default.json").read_text())["metrics"]["full_size"]
    # its recorded full-size evaluation (release 5: 41.1 dB, 1.60 %)
    assert shipped[6] == f"{recorded['psnr']:.1f} dB" and shipped[7] == f"{100 * recorded['ber']['jpeg:50']:.2f} %"
    tab.table.selectRow(list(rows(tab)).index("default"))
    assert not tab.remove_button.isEnabled()  # shipped models stay
    lines = tab.details.toPlainText().splitlines()
    full = next(i for i, line in enumerate(lines) if "full_size (" in line)
    native = next(i for i, line in enumerate(lines) if "native_table1 (" in line)
    assert full != native  # one line per measurement, not one run-on line
    tab.table.selectRow(list(rows(tab)).index("tiny"))  # the installed default of these tests
    assert tab.remove_button.isEnabled()
    dialogs.answers = [QMessageBox.StandardButton.Yes]
    tab.remove_button.click()
    assert "tiny" not in rows(tab) and not (user_models_dir() / "tiny.json").exists()
    assert default_model_name() == "default"
    assert any("It is the default model" in q for q in dialogs.questions)
