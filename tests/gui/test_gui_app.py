"""The application shell: files from the command line, shortcuts, preferences, About, settings that persist."""
from __future__ import annotations

import json

from conftest import _close, make_window, wait_idle
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from mbrs_gui import dialogs as dialogs_module
from mbrs_gui.app import parse_args
from mbrs_gui.settings import Settings, settings_path


def test_files_on_the_command_line_open_in_the_embed_tab(qtbot, installed_model, dialogs, photo_folder):
    args = parse_args([str(photo_folder / "photo1.png"), str(photo_folder / "photo2.png"), "--theme", "light"])
    assert args.theme == "light" and len(args.files) == 2
    window = make_window(qtbot, files=args.files)
    try:
        qtbot.waitUntil(lambda: len(window.embed.docs) == 2, timeout=20_000)
        assert window.embed.strip.isVisible()
    finally:
        _close(qtbot, window)
    recent = json.loads(settings_path().read_text())["recent_files"]
    assert recent[0].endswith("photo2.png") and recent[1].endswith("photo1.png")


def test_tab_shortcuts_and_status_bar(qtbot, window):
    for key, tab in ((Qt.Key.Key_2, window.verify), (Qt.Key.Key_3, window.train), (Qt.Key.Key_4, window.models),
                     (Qt.Key.Key_1, window.embed)):
        qtbot.keyClick(window, key, Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentWidget() is tab
    assert window.model_label.text() == "Model: tiny (H=32, L=256)"
    assert window.device_label.text() == "Device: CPU"
    assert window.timing_label.text().startswith("Load model:")


def test_preferences_theme_is_remembered(qtbot, window, monkeypatch):
    def accept(dialog):
        dialog.theme.setCurrentIndex(dialog.theme.findData("light"))
        dialog.quality.setValue(80)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(dialogs_module.PreferencesDialog, "exec", accept)
    window.preferences()
    from mbrs_gui import theme

    assert theme.current() == "light"
    legend = window.train.loss_plot.legend  # its text follows the theme: dark on the light background
    assert legend.labelTextColor().name().lower() == theme.PALETTES["light"]["plot_fg"].lower()
    assert window.embed.quality.value() == 80
    stored = json.loads(settings_path().read_text())
    assert stored["theme"] == "light" and stored["save_quality"] == 80
    monkeypatch.setattr(dialogs_module.PreferencesDialog, "exec",
                        lambda d: (d.theme.setCurrentIndex(d.theme.findData("dark")), QDialog.DialogCode.Accepted)[1])
    window.preferences()
    assert theme.current() == "dark"


def test_about_names_the_model_and_versions(qtbot, window, monkeypatch):
    shown = []
    monkeypatch.setattr(dialogs_module.AboutDialog, "exec", lambda d: shown.append(d.text.text()) or 0)
    window.about()
    assert "tiny" in shown[0] and "L = 256" in shown[0] and "PyTorch" in shown[0]


def test_geometry_is_saved_and_restored(qtbot, installed_model, dialogs):
    window = make_window(qtbot)
    screen = window.screen().availableGeometry()
    window.resize(screen.width() * 2 // 3, screen.height() * 2 // 3)
    wait_idle(qtbot, window)
    size = (window.width(), window.height())
    _close(qtbot, window)
    assert json.loads(settings_path().read_text())["geometry"]
    again = make_window(qtbot)
    try:
        assert size != (1440, 900)  # the default size: restoring must give the saved one instead
        assert abs(again.width() - size[0]) <= 4 and abs(again.height() - size[1]) <= 4
    finally:
        _close(qtbot, again)


def test_damaged_settings_file_falls_back_to_defaults(tmp_path):
    path = tmp_path / "gui.json"
    path.write_text("{not json")
    settings = Settings(path)
    assert settings.get("theme") == "dark" and "could not be read" in settings.load_error


def test_f1_opens_help_with_the_shortcuts_not_about(qtbot, window, monkeypatch):
    from PySide6.QtGui import QKeySequence
    from PySide6.QtWidgets import QMenu

    shown = []
    monkeypatch.setattr(dialogs_module.HelpDialog, "exec", lambda self: shown.append(self.text.text()) or 0)
    monkeypatch.setattr(dialogs_module.AboutDialog, "exec", lambda self: shown.append("about") or 0)
    action = next(a for m in window.menuBar().findChildren(QMenu) for a in m.actions()
                  if a.shortcut() == QKeySequence(QKeySequence.StandardKey.HelpContents))
    action.trigger()
    assert len(shown) == 1 and shown[0] != "about"
    assert "Keyboard shortcuts" in shown[0] and "Ctrl+D" in shown[0] and "Esc" in shown[0]
