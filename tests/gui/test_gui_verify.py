"""The Verify tab driven like a user: take the embedded image, attack it with JPEG, decode, sweep."""
from __future__ import annotations

from conftest import wait_idle
from gui_helpers import drop_files
from test_gui_embed import MESSAGE, embed_photo

from mbrs_gui.attack_chain import KINDS, Chain


def add_attack(editor, label: str):
    """Pick an attack from the "Add attack" menu, as a user would."""
    action = next(a for a in editor.add_button.menu().actions() if a.text() == label)
    action.trigger()
    return editor.rows[-1]


def test_attack_with_jpeg_and_decode_the_message(qtbot, window, photo):
    embed_photo(qtbot, window, photo)
    window.embed.verify_button.click()
    tab = window.verify
    assert window.tabs.currentWidget() is tab
    assert tab.expected.text() == MESSAGE
    row = add_attack(tab.editor, KINDS["jpeg"].label)
    row.spins[0].setValue(75)
    wait_idle(qtbot, window)
    assert tab.attacked is not None and tab.attacked_view.has_image()  # live preview of the attacked image
    tab.decode_button.click()
    wait_idle(qtbot, window)
    assert tab.message_label.text() == MESSAGE
    assert tab.detected_label.text().startswith("Detected")
    assert "of 256 raw bits wrong" in tab.errors_label.text()
    assert tab.bits.soft is not None and len(tab.bits.soft) == 256
    assert tab.bits.errors() is not None
    assert float(tab.p_label.text().split()[0]) < 1e-6
    found = tab.attacked_view.outlines.path().boundingRect()  # where it was read, drawn on the attacked image
    image = tab.attacked_view.content_rect()
    inside = found.intersected(image)
    assert not found.isEmpty() and inside.width() * inside.height() >= 0.25 * image.width() * image.height()
    row.spins[0].setValue(60)  # another attacked image: the outlines were for the last one
    wait_idle(qtbot, window)
    assert tab.attacked_view.outlines.path().isEmpty()


def test_unmarked_image_is_not_detected(qtbot, window, photo):
    tab = window.verify
    window.tabs.setCurrentWidget(tab)
    assert drop_files(tab, [photo])
    qtbot.waitUntil(lambda: tab.image is not None, timeout=20_000)
    tab.decode_button.click()
    wait_idle(qtbot, window)
    assert tab.detected_label.text().startswith("Not detected")
    assert tab.message_label.text() == "(no message found)"
    assert tab.attacked_view.outlines.path().isEmpty()  # nothing found, nothing drawn


def test_robustness_sweep_plots_ber_against_jpeg_and_crop(qtbot, window, photo):
    embed_photo(qtbot, window, photo)
    window.embed.verify_button.click()
    tab = window.verify
    wait_idle(qtbot, window)
    tab.sweep_button.click()
    wait_idle(qtbot, window, timeout=120_000)
    xs, ys = tab.jpeg_plot.points("BER")
    assert xs == [10, 20, 30, 40, 50, 60, 70, 80, 90] and len(ys) == 9
    assert ys[-1] <= ys[0]  # high quality hurts less than low quality
    assert len(tab.crop_plot.points("BER")[0]) == 6
    assert tab.sweep_summary.text().startswith("Message")
    tab.open_files([photo])  # another image: the curves and the summary were the previous image's
    qtbot.waitUntil(lambda: tab.source_path == photo, timeout=20_000)
    wait_idle(qtbot, window)
    assert tab.jpeg_plot.points("BER") == ([], []) and tab.crop_plot.points("BER") == ([], [])
    assert tab.sweep_summary.text().startswith("Press") and tab.sweep_result is None


def test_cropout_without_the_original_explains_itself(qtbot, window, dialogs, photo):
    tab = window.verify
    tab.open_files([photo])
    qtbot.waitUntil(lambda: tab.image is not None, timeout=20_000)
    add_attack(tab.editor, KINDS["cropout"].label)
    wait_idle(qtbot, window)
    assert "original" in tab.attacked_view.placeholder
    tab.decode_button.click()
    wait_idle(qtbot, window)
    assert dialogs.errors() and "original" in dialogs.errors()[-1][1]


def test_every_registered_attack_can_be_added_and_applied(qtbot, window, photo):
    from PIL import Image

    from mbrs_engine.attacks import KINDS as ENGINE_KINDS

    editor = window.verify.editor
    labels = [a.text() for a in editor.add_button.menu().actions()]
    assert labels == [kind.label for kind in ENGINE_KINDS.values()]  # the engine's registry, all of it
    img = Image.open(photo).convert("RGB")
    for kind in ENGINE_KINDS.values():
        editor.set_chain(Chain())
        add_attack(editor, kind.label)
        # a row fits the panel (a crop's four values beside its name took 511 px here and hid its buttons, and the
        # panel's other buttons, behind the panel's edge)
        assert editor.rows[-1].minimumSizeHint().width() <= 380, kind.name
        out = editor.chain().apply(img, original=img)
        assert out.mode == "RGB" and (out.size == img.size or kind.geometric)


def test_verify_tries_every_installed_model_and_names_the_one_that_read_it(qtbot, window, photo, tmp_path):
    from PIL import Image

    from mbrs_engine import Watermarker

    shipped = Watermarker.from_pretrained("default")  # the app's default here is the tiny model
    marked = tmp_path / "by-default.png"
    shipped.embed(Image.open(photo).convert("RGB").resize((256, 192)), "shipped", refine=False).save(marked)
    tab = window.verify
    tab.open_files([marked])
    qtbot.waitUntil(lambda: tab.image is not None, timeout=20_000)
    tab.every_model.setChecked(False)
    tab.decode_button.click()
    wait_idle(qtbot, window)
    assert tab.decoded.result.detected is False and tab.model_label.text() == "tiny"
    tab.every_model.setChecked(True)
    tab.decode_button.click()
    wait_idle(qtbot, window)
    result = tab.decoded.result
    assert result.message == "shipped" and result.model == "default"
    assert tab.model_label.text().startswith("default (tried 2 models: tiny, default)")
    alone = shipped.decode(Image.open(marked))
    assert result.hypotheses == 2 * alone.hypotheses  # the p-value counts both models' hypotheses


def test_verify_a_folder_shows_a_table_exports_csv_and_report_and_opens_a_row(
        qtbot, window, photo, tmp_path, monkeypatch, tiny_wm):
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog

    from mbrs_engine.attacks import apply_chain, parse_chain

    folder = tmp_path / "to-verify"
    folder.mkdir()
    marked = tiny_wm.embed(Image.open(photo).convert("RGB"), MESSAGE)
    marked.save(folder / "a-marked.png")
    apply_chain(marked, parse_chain("jpeg:90")).save(folder / "b-attacked.jpg", quality=100)
    Image.open(photo).save(folder / "c-unmarked.png")
    (folder / "d-broken.png").write_bytes(b"\x89PNG broken")
    tab = window.verify
    window.tabs.setCurrentWidget(tab)
    assert drop_files(tab, [folder])                                       # a dropped folder is verified
    qtbot.waitUntil(lambda: tab.batch_dialog is not None and tab.batch_dialog.isVisible(), timeout=120_000)
    dialog = tab.batch_dialog
    table = dialog.table
    results = [table.item(r, 2).text() for r in range(table.rowCount())]
    assert results == ["✓ watermark", "✓ watermark", "✗ none", "unreadable"]
    assert table.item(0, 3).text() == MESSAGE and float(table.item(0, 4).text()) < 1e-6
    assert table.item(0, 5).text() == tiny_wm.name and table.cellWidget(0, 0) is not None  # model, thumbnail
    assert "4 file(s): 2 with a watermark, 1 without, 1 unreadable" in dialog.summary.text()

    for button, name in ((dialog.csv_button, "out.csv"), (dialog.report_button, "out.html")):
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, n=name, **k: (str(tmp_path / n), "")))
        button.click()
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").count("\n") == 5
    report = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert report.count("data:image/jpeg;base64,") == 3 and report.count("<svg") == 4

    table.cellDoubleClicked.emit(2, 1)                                     # open the unmarked one in Verify
    qtbot.waitUntil(lambda: tab.source_path is not None and tab.source_path.name == "c-unmarked.png", timeout=20_000)
