"""The Train tab driven like a user: a photo folder, a tiny network, a 5-step run to the end, cancelling, closing."""
from __future__ import annotations

from conftest import wait_idle
from PySide6.QtWidgets import QMessageBox

from mbrs_engine.model_files import default_model_name, list_models


def fill_tiny_run(qtbot, tab, photo_folder, run_dir, steps: int) -> None:
    """The form as a user with little time would fill it: tiny network, few steps, small validation."""
    tab.folder.setText(str(photo_folder))
    tab.scan_folder(str(photo_folder))
    qtbot.waitUntil(lambda: tab.scan is not None, timeout=20_000)
    tab.preset.setCurrentText("cpu-small")
    tab.advanced_button.click()
    tab.image_size.setValue(32)
    tab.message_length.setValue(16)
    tab.channels.setValue(16)
    tab.blocks.setValue(1)
    tab.batch_size.setValue(4)
    tab.steps.setValue(steps)
    tab.workers.setValue(0)
    tab.val_count.setValue(2)
    tab.validation_every.setValue(5)
    tab.sample_every.setValue(5)
    tab.run_folder.setText(str(run_dir))
    tab.noise_boxes["crop"][0].setChecked(True)


def test_five_step_training_reaches_the_end_and_becomes_a_model(qtbot, window, dialogs, photo_folder, tmp_path):
    window.tabs.setCurrentWidget(window.train)
    tab = window.train
    fill_tiny_run(qtbot, tab, photo_folder, tmp_path / "run", steps=5)
    assert tab.count_label.text().startswith("6 usable image(s)")
    assert len(tab.samples_grid.labels) == 6
    assert tab.noise_spec() == "Combined([JpegMask(),RealJpeg(50),Identity(),Crop(0.7)])"
    assert "raw bits only" in tab.arch_label.text()

    tab.start_button.click()
    assert not tab.start_button.isEnabled() and tab.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: tab.state == "finished", timeout=120_000)
    assert tab.progress.value() == 5 and tab.progress.maximum() == 5
    assert tab.progress_label.text().startswith("Finished at step 5 of 5")
    assert len(tab.val_plot.points("clean")[0]) == 1
    assert len(tab.loss_plot.points("loss")[0]) == 5
    assert tab.sample_grid.labels  # the latest samples are shown
    assert (tmp_path / "run" / "last.ckpt").is_file()

    assert tab.export_box.isEnabled() and not tab.make_default.isChecked()  # never the default by one click
    tab.model_name.setText("my-tiny")
    tab.make_default.setChecked(True)
    tab.export_button.click()
    wait_idle(qtbot, window)
    assert "my-tiny" in [m.name for m in list_models()]
    # five steps do not make a model whose messages read back: saved, but the default stays what it was
    assert default_model_name() == "tiny"
    icon, text, _ = dialogs.shown[-1]
    assert icon == "Warning" and "not made the default" in text and "bits wrong" in text
    assert window.tabs.currentWidget() is window.models
    names = [window.models.table.item(r, 1).text() for r in range(window.models.table.rowCount())]
    assert "my-tiny" in names


def test_cancel_midway_writes_a_checkpoint(qtbot, window, photo_folder, tmp_path):
    tab = window.train
    fill_tiny_run(qtbot, tab, photo_folder, tmp_path / "run", steps=5000)
    tab.start_button.click()
    qtbot.waitUntil(lambda: tab.last_step is not None and tab.last_step.step >= 3, timeout=120_000)
    tab.pause_button.click()
    assert tab.pause_button.text() == "Resume"
    tab.pause_button.click()
    tab.cancel_button.click()
    qtbot.waitUntil(lambda: tab.state == "cancelled", timeout=120_000)
    assert (tmp_path / "run" / "last.ckpt").is_file()
    assert tab.checkpoints >= 1
    assert tab.progress_label.text().startswith("Cancelled at step")
    assert tab.progress.value() < 5000


def test_closing_mid_run_asks_then_checkpoints(qtbot, window, dialogs, photo_folder, tmp_path):
    tab = window.train
    fill_tiny_run(qtbot, tab, photo_folder, tmp_path / "run", steps=5000)
    tab.start_button.click()
    qtbot.waitUntil(lambda: tab.last_step is not None and tab.last_step.step >= 2, timeout=120_000)
    dialogs.answers = [QMessageBox.StandardButton.No]
    window.close()
    assert window.isVisible() and tab.is_running()
    dialogs.answers = [QMessageBox.StandardButton.Yes]
    window.close()
    assert not window.isVisible()
    assert "training run is in progress" in dialogs.questions[-1]
    assert (tmp_path / "run" / "last.ckpt").is_file()
    assert not tab.thread.isRunning()


def test_the_form_fits_a_1024_by_700_window_and_the_wheel_does_not_change_fields(qtbot, window, tmp_path):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    window.resize(1024, 700)
    window.tabs.setCurrentWidget(window.train)
    tab = window.train
    qtbot.wait(50)
    assert "at least 33 photos" in tab.count_label.text()  # said before a folder is picked
    side = tab.form_scroll.widget()
    assert side.minimumSizeHint().width() <= tab.form_scroll.viewport().width()  # nothing cut off on the right
    tab.status_label.setText("Checkpoint saved at step 5: " + "/very-long-folder-name" * 40 + "/last.ckpt")
    qtbot.wait(50)
    assert window.width() <= 1024  # a long path wraps or is clipped; it never widens the window

    before = tab.steps.value()
    tab.form_scroll.setFocus()
    centre = tab.steps.rect().center()
    event = QWheelEvent(QPointF(centre), QPointF(tab.steps.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, -120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(tab.steps, event)
    assert tab.steps.value() == before  # not focused: the form scrolls, the value stays
    tab.steps.setFocus()
    qtbot.waitUntil(tab.steps.hasFocus, timeout=2_000)
    QApplication.sendEvent(tab.steps, event)
    assert tab.steps.value() != before  # once the user is in the field, the wheel is theirs


def test_continue_a_run_lists_the_runs_keeps_the_runs_settings_and_reloads_its_curves(
        qtbot, window, photo_folder, tmp_path, monkeypatch):
    import mbrs_gui.tabs.train as train_tab
    from mbrs_gui import train_jobs

    window.tabs.setCurrentWidget(window.train)
    tab = window.train
    runs = tmp_path / "runs"
    fill_tiny_run(qtbot, tab, photo_folder, runs / "first", steps=10)
    tab.start_button.click()
    qtbot.waitUntil(lambda: tab.state == "finished", timeout=120_000)
    assert len(tab.val_plot.points("clean")[0]) == 2                       # steps 5 and 10

    tab.preset.setCurrentText("paper-128-64")                              # the form now says 62,500 steps, 128 px
    assert tab.steps.value() == 62_500
    monkeypatch.setattr(train_jobs, "default_run_dir", lambda name: runs / name)
    shown = []

    def accept(dialog):
        shown.append([dialog.list.item(i).text() for i in range(dialog.list.count())])
        assert dialog.steps.value() == 1010                                # finished: continue further
        dialog.steps.setValue(15)
        return 1

    monkeypatch.setattr(train_tab.ResumeDialog, "exec", accept)
    tab.resume_button.click()
    assert shown and shown[0][0].startswith("first: finished · best BER")
    assert tab.steps.value() == 15 and tab.image_size.value() == 32        # the run's settings, not the preset's
    assert tab.progress.maximum() == 15 and tab.progress.value() >= 10
    qtbot.waitUntil(lambda: tab.state == "finished", timeout=120_000)
    assert tab.progress_label.text().startswith("Finished at step 15 of 15")
    assert tab.val_plot.points("clean")[0] == [5, 10, 15]                  # the earlier curve came back
