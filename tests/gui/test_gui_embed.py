"""The Embed tab driven like a user: drop a photo, type a message, move the strength slider, save."""
from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
from conftest import random_bytes_file, wait_idle
from gui_helpers import drop_files, type_text
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from mbrs_engine.metrics import psnr

MESSAGE = "Hi MBRS!"


def embed_photo(qtbot, window, photo, message=MESSAGE, timeout: int = 60_000):
    tab = window.embed
    assert drop_files(tab, [photo])
    qtbot.waitUntil(lambda: tab.current is not None, timeout=20_000)
    type_text(qtbot, tab.message, message)
    wait_idle(qtbot, window, timeout)
    assert tab.can_save()
    return tab


def psnr_of_label(tab) -> float:
    return float(tab.psnr_label.text().split()[0].lstrip("≈"))


def test_drop_type_slide_and_save(qtbot, window, photo, tmp_path, monkeypatch, tiny_wm):
    tab = embed_photo(qtbot, window, photo)
    assert tab.meter.label.text() == f"{len(MESSAGE)} of {tiny_wm.capacity} characters"
    assert tab.views.marked.has_image() and tab.views.difference.has_image()
    first = psnr_of_label(tab)

    tab.slider.setFocus()
    qtbot.keyClick(tab.slider, Qt.Key.Key_PageUp)  # +0.1 strength
    qtbot.keyClick(tab.slider, Qt.Key.Key_PageUp)
    assert tab.spin.value() == pytest.approx(1.2)
    stronger = psnr_of_label(tab)
    assert stronger < first - 0.5  # a stronger watermark is more visible
    assert tab.last_update_ms < 1000
    wait_idle(qtbot, window)
    assert tab.ssim_label.text() not in ("–", "…")
    assert not tab.psnr_label.text().startswith("≈")  # the full-resolution render measured it
    stronger = psnr_of_label(tab)
    assert window.windowTitle() == "1 unsaved image(s)[*]" and window.isWindowModified()  # Qt adds the app name

    target = tmp_path / "marked.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "PNG (*.png)")))
    tab.save_button.click()
    wait_idle(qtbot, window)
    assert target.is_file()
    assert not tab.unsaved_documents()
    saved = Image.open(target).convert("RGB")
    original = Image.open(photo).convert("RGB")
    assert float(psnr(original, saved)[0]) == pytest.approx(stronger, abs=0.006)  # the PSNR shown is the file's
    assert tiny_wm.decode(saved).message == MESSAGE


@pytest.mark.parametrize("strength, refine", [(0.7, True), (1.3, False)])
def test_the_saved_image_is_mbrs_embed_bit_for_bit(qtbot, window, photo, tmp_path, monkeypatch, strength, refine):
    """One embedding path: the app's Save writes the pixels `mbrs embed` writes with the same message, strength
    and options (the engine's prepared embedding, rendered at the slider's strength)."""
    from mbrs_engine.cli import main

    tab = window.embed
    tab.refine.setChecked(refine)
    tab = embed_photo(qtbot, window, photo)
    tab.spin.setValue(strength)
    wait_idle(qtbot, window)
    target = tmp_path / "app.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "PNG (*.png)")))
    tab.save_button.click()
    wait_idle(qtbot, window)
    cli = tmp_path / "cli.png"
    args = ["embed", str(photo), "-m", MESSAGE, "-s", str(strength), "-o", str(cli)]
    assert main(args + ([] if refine else ["--no-refine"])) == 0
    app_pixels, cli_pixels = (np.asarray(Image.open(p).convert("RGB")) for p in (target, cli))
    assert np.array_equal(app_pixels, cli_pixels)
    assert not np.array_equal(app_pixels, np.asarray(Image.open(photo).convert("RGB")))


def test_message_field_refuses_text_beyond_capacity(qtbot, window, photo, tiny_wm):
    tab = window.embed
    type_text(qtbot, tab.message, "x" * (tiny_wm.capacity + 5))
    assert tab.message.text() == "x" * tiny_wm.capacity
    assert tab.meter.label.text().startswith(f"Full: the model holds at most {tiny_wm.capacity}")  # said, not silent
    qtbot.keyClick(tab.message, Qt.Key.Key_Backspace)
    assert tab.meter.label.text() == f"{tiny_wm.capacity - 1} of {tiny_wm.capacity} characters"
    type_text(qtbot, tab.message, "é")
    assert "bytes" in tab.meter.label.text()


def test_bad_file_gives_a_dialog_not_a_crash(qtbot, window, dialogs, tmp_path, photo):
    bad = random_bytes_file(tmp_path / "broken.png")
    drop_files(window.embed, [bad, photo])
    qtbot.waitUntil(lambda: bool(dialogs.errors()), timeout=20_000)
    icon, text, details = dialogs.errors()[0]
    assert "broken.png" in text and "broken.png" in details
    qtbot.waitUntil(lambda: len(window.embed.docs) == 1, timeout=20_000)  # the good file still opened


@pytest.mark.qt_no_exception_capture
def test_uncaught_exception_shows_dialog(qtbot, window, dialogs):
    try:
        raise RuntimeError("simulated bug in a slot")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    qtbot.waitUntil(lambda: bool(dialogs.errors()), timeout=5_000)
    assert "simulated bug" in dialogs.errors()[0][1].lower()
    assert "Traceback" in dialogs.errors()[0][2]
    assert window.isVisible()


def test_unsaved_image_prompts_on_close(qtbot, window, dialogs, photo):
    embed_photo(qtbot, window, photo)
    dialogs.answers = [QMessageBox.StandardButton.Cancel]
    window.close()
    assert window.isVisible() and len(dialogs.questions) == 1 and "not saved" in dialogs.questions[0]
    dialogs.answers = [QMessageBox.StandardButton.Discard]
    window.close()
    assert not window.isVisible()


def test_no_model_installed_starts_and_says_so(no_shipped_models, qtbot, bare_window):
    tab = bare_window.embed
    assert tab.banner.isVisible()
    assert "No watermarking model is installed" in tab.banner.label.text()
    assert not tab.message.isEnabled()
    assert not bare_window.verify.banner.isHidden() and "Models" in bare_window.verify.banner.label.text()
    tab.banner.button.click()
    assert bare_window.tabs.currentWidget() is bare_window.models
    assert bare_window.models.empty.isVisible()


def test_save_all_writes_images_and_csv_report(qtbot, window, dialogs, photo_folder, tmp_path, monkeypatch):
    from mbrs_gui.tabs import embed as embed_module

    photos = sorted(photo_folder.glob("*.png"))[:3]
    tab = window.embed
    drop_files(tab, photos)
    qtbot.waitUntil(lambda: len(tab.docs) == 3, timeout=20_000)
    type_text(qtbot, tab.message, MESSAGE)
    wait_idle(qtbot, window)
    out = tmp_path / "out"
    out.mkdir()

    def accept(dialog):
        dialog.folder.setText(str(out))
        dialog.format.setCurrentText("JPEG")
        dialog.quality.setValue(90)
        return embed_module.QDialog.DialogCode.Accepted

    monkeypatch.setattr(embed_module.SaveAllDialog, "exec", accept)
    tab.save_all_button.click()
    wait_idle(qtbot, window)
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"{p.stem}-wm.jpg" for p in photos]
    report = list(csv.DictReader((out / "mbrs-report.csv").open()))
    assert len(report) == 3 and {"input", "output", "width", "height", "message"} <= set(report[0])
    assert [row["reads_back"] for row in report] == ["True"] * 3 and not dialogs.shown  # every file reads back
    assert not tab.unsaved_documents()


def test_a_save_that_does_not_read_back_says_so(qtbot, window, dialogs, photo, tmp_path, monkeypatch):
    tab = embed_photo(qtbot, window, photo)
    tab.spin.setValue(0.01)  # the residual rounds away
    wait_idle(qtbot, window)
    target = tmp_path / "faint.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "PNG (*.png)")))
    tab.save_button.click()
    wait_idle(qtbot, window)
    assert target.is_file() and tab.current.reads_back is False
    icon, text, _ = dialogs.shown[-1]
    assert icon == "Warning" and "does not read back" in text
    assert "does NOT read back" in window.statusBar().currentMessage()
    tab.spin.setValue(1.0)
    wait_idle(qtbot, window)
    tab.save_button.click()  # saved before: Save writes the same file again, which the user chose
    wait_idle(qtbot, window)
    assert tab.current.reads_back is True and "the message reads back" in window.statusBar().currentMessage()


def test_an_image_too_small_for_the_model_is_refused_with_a_dialog(qtbot, window, dialogs, tmp_path, tiny_wm):
    small = tmp_path / "small.png"
    Image.new("RGB", (8, 8), (200, 100, 50)).save(small)
    tab = window.embed
    drop_files(tab, [small])
    qtbot.waitUntil(lambda: tab.current is not None, timeout=20_000)
    type_text(qtbot, tab.message, MESSAGE)
    wait_idle(qtbot, window)
    assert any("too small" in text and f"{tiny_wm.min_side} pixels" in text for _, text, _ in dialogs.errors())
    assert not tab.can_save()


@pytest.mark.parametrize("agree", [False, True])
def test_embedding_over_a_watermark_asks_first(qtbot, window, dialogs, photo, tmp_path, tiny_wm, agree):
    marked = tmp_path / "marked.png"
    tiny_wm.embed(Image.open(photo), "first", refine=False).save(marked)
    assert tiny_wm.decode(Image.open(marked)).message == "first"
    dialogs.answers = [QMessageBox.StandardButton.Yes if agree else QMessageBox.StandardButton.No]
    tab = window.embed
    drop_files(tab, [marked])
    qtbot.waitUntil(lambda: tab.current is not None, timeout=20_000)
    type_text(qtbot, tab.message, MESSAGE)
    wait_idle(qtbot, window)
    assert any("already carries a watermark" in q and "first" in q for q in dialogs.questions)
    assert tab.can_save() == agree
    if not agree:
        assert "already carries a watermark" in window.statusBar().currentMessage()


def test_the_visibility_figure_and_view(qtbot, window, photo):
    tab = embed_photo(qtbot, window, photo)
    assert float(tab.visibility_label.text()) > 0  # the full-resolution figure, not an estimate
    assert tab.views.difference.caption == "Difference"
    tab.views.third_buttons.button(1).click()
    assert tab.views.difference.caption == "Visibility" and tab.views.difference.has_image()
    heat = tab.views.difference.item.preview
    tab.slider.setValue(tab.slider.value() + 50)
    QApplication.processEvents()
    assert tab.visibility_label.text().startswith("≈")  # scaled from the last figure while it is worked out
    assert tab.views.difference.item.preview is not heat  # the view follows the slider
    wait_idle(qtbot, window)
    assert not tab.visibility_label.text().startswith("≈")
    tab.views.third_buttons.button(0).click()
    assert tab.views.difference.caption == "Difference"


def test_the_slider_renders_the_screen_sized_preview_and_the_full_image_only_after_it(qtbot, window, tmp_path,
                                                                                      monkeypatch):
    """What keeps the slider instant on a photo of any size: each move renders the preview (at most
    PREVIEW_SIDE a side), the full-resolution image only once the slider rests (its speed on a 12 MP photo:
    benchmarks/bench_slider.py)."""
    from mbrs_gui.imaging import PREVIEW_SIDE, Preview, Residual

    wide = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 140, 3), dtype=np.uint8)).resize(
        (PREVIEW_SIDE + 120, 300), Image.Resampling.BILINEAR).save(wide)
    tab = embed_photo(qtbot, window, wide)
    rendered = []
    for cls in (Preview, Residual):
        monkeypatch.setattr(cls, "render", lambda self, strength, real=cls.render: rendered.append(
            (type(self).__name__, self.size)) or real(self, strength))
    for value in (110, 140, 90):
        tab.slider.setValue(value)
        QApplication.processEvents()
    assert rendered and all(name == "Preview" and max(size) <= PREVIEW_SIDE for name, size in rendered)
    assert tab.views.marked.item.preview.width() <= PREVIEW_SIDE
    wait_idle(qtbot, window)
    assert ("Residual", (PREVIEW_SIDE + 120, 300)) in rendered  # then the full image, once resting


def test_auto_strength_finds_the_lowest_strength_that_survives(qtbot, window, dialogs, photo, tiny_wm):
    from mbrs_engine.attacks import apply_chain, parse_chain
    from mbrs_gui.documents import AUTO_LADDER, try_strength

    tab = embed_photo(qtbot, window, photo)
    tab.auto_attack.setCurrentText("jpeg:95")
    tab.auto_button.click()
    wait_idle(qtbot, window)
    assert not dialogs.errors()
    assert "lowest" in window.statusBar().currentMessage()
    found = tab.spin.value()
    assert AUTO_LADDER[0] <= found <= AUTO_LADDER[-1]
    attacked = apply_chain(tab.current.marked_image(found), parse_chain("jpeg:95"))
    assert tiny_wm.decode(attacked).message == MESSAGE  # what must hold on any machine: the message survives
    chain = parse_chain("jpeg:95")
    assert try_strength(tiny_wm, tab.current.residual, found, chain, MESSAGE, None, False).reads_back
    if found > AUTO_LADDER[0]:  # the search starts where the watermark is too weak
        assert not try_strength(tiny_wm, tab.current.residual, AUTO_LADDER[0], chain, MESSAGE, None, False).reads_back


@pytest.mark.refine
def test_refine_box_reembeds_without_refinement_and_is_remembered(qtbot, window, photo, tiny_wm):
    tab = embed_photo(qtbot, window, photo)
    assert tab.tiles.isChecked() and tab.current.signature.tiled
    tiled = tab.current.residual.render(1.0)
    assert np.array_equal(tiled, np.asarray(tiny_wm.embed(Image.open(photo), MESSAGE).convert("RGB")))
    tab.tiles.setChecked(False)  # refinement is for the whole-frame layout
    wait_idle(qtbot, window)
    assert not tab.current.signature.tiled and window.ctx.settings.get("tiles") is False
    assert tab.refine.isChecked() and tab.current.signature.refine
    refined = tab.current.residual.render(1.0)
    assert not np.array_equal(refined, tiled)
    tab.refine.setChecked(False)
    wait_idle(qtbot, window)
    assert not tab.current.signature.refine and window.ctx.settings.get("refine") is False
    plain = tab.current.residual.render(1.0)
    expected = tiny_wm.embed(Image.open(photo), MESSAGE, refine=False, tiled=False)
    assert np.array_equal(plain, np.asarray(expected.convert("RGB")))
    assert not np.array_equal(plain, refined)


def test_embed_job_reports_refinement_steps_and_stops_on_cancel(photo, tiny_wm):
    from mbrs_gui.documents import Signature, embed, open_document
    from mbrs_gui.workers import Cancelled

    class Context:
        def __init__(self, cancel_at=None):
            self.seen, self.cancel_at = [], cancel_at

        def progress(self, done, total, text=""):
            self.seen.append((done, total, text))
            if done == self.cancel_at and total:
                raise Cancelled()

        def check(self):
            pass

    doc = open_document(photo)
    ctx = Context()
    result = embed(ctx, tiny_wm, doc, Signature(MESSAGE, None, id(tiny_wm), True, tiled=False))
    steps = [s for s in ctx.seen if s[1]]
    assert steps and all("Refining the watermark of photo0.png" in text for _, _, text in steps)
    assert steps[-1][0] == steps[-1][1] and result.residual.size == doc.size
    with pytest.raises(Cancelled):
        embed(Context(cancel_at=3), tiny_wm, doc, Signature(MESSAGE, None, id(tiny_wm), True, tiled=False))
    plain = Context()
    embed(plain, tiny_wm, doc, Signature(MESSAGE, None, id(tiny_wm), False))
    assert not [s for s in plain.seen if s[1]]  # no refinement, no steps


def test_a_grey_photo_says_the_output_is_rgb(qtbot, window, photo, tmp_path):
    grey = tmp_path / "grey.png"
    Image.open(photo).convert("L").save(grey)
    tab = window.embed
    drop_files(tab, [grey])
    qtbot.waitUntil(lambda: tab.current is not None, timeout=20_000)
    assert tab.current.notes and "greyscale" in window.statusBar().currentMessage()


@pytest.mark.refine
def test_a_cancelled_embedding_says_so_and_can_be_run_again(qtbot, window, photo):
    tab = window.embed
    drop_files(tab, [photo])
    qtbot.waitUntil(lambda: tab.current is not None, timeout=20_000)
    type_text(qtbot, tab.message, MESSAGE)
    qtbot.waitUntil(lambda: window.busy.task is not None and window.busy.task.name == "Embed", timeout=20_000)
    window.cancel_action.trigger()  # Esc
    wait_idle(qtbot, window)
    assert not tab.can_save() and tab.embed_button.isVisible()
    assert "cancelled" in tab.views.marked.placeholder and "cancelled" in window.statusBar().currentMessage()
    tab.embed_button.click()
    wait_idle(qtbot, window)
    assert tab.can_save() and not tab.embed_button.isVisible()


def test_the_zoom_label_is_the_zoom_on_screen_after_embedding(qtbot, window, photo):
    window.resize(1400, 900)
    tab = embed_photo(qtbot, window, photo)
    views = tab.views
    shown = f"{views.marked.zoom() * 100:.0f} %"
    assert views.marked.isVisible() and views.zoom_label.text() == shown
    views.sync.zoom_all(1.25)
    assert views.zoom_label.text() == f"{views.original.zoom() * 100:.0f} %"
    views.set_mode("split")
    assert views.zoom_label.text() == f"{views.split.zoom() * 100:.0f} %"


def test_the_split_view_before_embedding_shows_the_whole_original_centred(qtbot, window, photo):
    tab = window.embed
    assert drop_files(tab, [photo])
    qtbot.waitUntil(lambda: tab.current is not None, timeout=20_000)
    tab.views.set_mode("split")
    split = tab.views.split
    qtbot.waitUntil(split.isVisible)
    width, height = Image.open(photo).size
    assert (split.content_rect().width(), split.content_rect().height()) == (width, height)
    center = split.mapToScene(split.viewport().rect().center())
    assert abs(center.x() - width / 2) < 2 and abs(center.y() - height / 2) < 2
    assert split.original.clip_fraction is None                      # no divider before there is a watermark
    type_text(qtbot, tab.message, MESSAGE)
    wait_idle(qtbot, window)
    assert split.original.clip_fraction == 0.5


def test_a_dropped_folder_opens_its_images_for_save_all(qtbot, window, photo_folder):
    tab = window.embed
    assert drop_files(tab, [photo_folder])
    qtbot.waitUntil(lambda: len(tab.docs) == 6, timeout=30_000)
    assert sorted(d.name for d in tab.docs.values()) == sorted(p.name for p in photo_folder.glob("*.png"))


def test_fitted_views_each_fit_their_own_size_and_zoomed_ones_share_the_zoom(qtbot, window, photo):
    window.resize(1400, 900)
    tab = embed_photo(qtbot, window, photo)
    tab.views.set_mode("split")
    split, narrow = tab.views.split, tab.views.split_difference
    qtbot.waitUntil(split.isVisible)
    assert split.viewport().width() > narrow.viewport().width()
    assert split.zoom() > narrow.zoom()                                    # the big view is not shrunk to the narrow one
    tab.views.sync.zoom_all(1.25)
    assert split.zoom() == pytest.approx(narrow.zoom())                   # zoomed: in step
