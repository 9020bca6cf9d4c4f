"""The main window: the four tabs, menus and shortcuts, status bar, and the close-time safety checks."""
from __future__ import annotations

import base64
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMenu, QTabWidget

from . import APP_NAME
from .context import AppContext
from .dialogs import AboutDialog, HelpDialog, PreferencesDialog
from .icons import app_icon
from .tabs.embed import EmbedTab
from .tabs.models import ModelsTab
from .tabs.train import TrainTab
from .tabs.verify import VerifyTab
from .theme import apply_theme
from .workers import Task

class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext):
        super().__init__()
        self.ctx = ctx
        self.setWindowTitle("")  # Qt shows the application display name
        self.setWindowIcon(app_icon())
        self.embed = EmbedTab(ctx)
        self.verify = VerifyTab(ctx)
        self.train = TrainTab(ctx)
        self.models = ModelsTab(ctx)
        self.all_tabs = (self.embed, self.verify, self.train, self.models)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for tab in self.all_tabs:
            self.tabs.addTab(tab, tab.title)
        self.setCentralWidget(self.tabs)
        self._build_status_bar()
        self._build_menus()
        self._connect()
        self._restore_geometry()
        self._update_actions()

    # ------------------------------------------------------------ construction

    def _build_status_bar(self) -> None:
        from .widgets.busy import BusyIndicator

        bar = self.statusBar()
        self.busy = BusyIndicator(self.ctx.tasks)
        self.model_label = QLabel()
        self.device_label = QLabel()
        self.timing_label = QLabel("")
        bar.addPermanentWidget(self.busy)
        bar.addPermanentWidget(self.timing_label)
        bar.addPermanentWidget(self.model_label)
        bar.addPermanentWidget(self.device_label)
        self._show_model()

    def _action(self, menu: QMenu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file = menus.addMenu("&File")
        self.open_action = self._action(file, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open,
                                        "Open images in the current tab")
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        self.save_action = self._action(file, "&Save", lambda: self.save(False), QKeySequence.StandardKey.Save)
        self.save_as_action = self._action(file, "Save &As…", lambda: self.save(True), QKeySequence("Ctrl+Shift+S"))
        self.save_all_action = self._action(file, "Save A&ll…", self.embed.save_all, QKeySequence("Ctrl+Alt+S"))
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence("Ctrl+Q"))

        edit = menus.addMenu("&Edit")
        self._action(edit, "&Preferences…", self.preferences, QKeySequence("Ctrl+,"))

        view = menus.addMenu("&View")
        for i, tab in enumerate(self.all_tabs):
            self._action(view, tab.title, lambda _=False, t=tab: self.tabs.setCurrentWidget(t),
                         QKeySequence(f"Ctrl+{i + 1}"))
        view.addSeparator()
        self._action(view, "Zoom &In", lambda: self._views().zoom_all(1.25), QKeySequence.StandardKey.ZoomIn)
        self._action(view, "Zoom &Out", lambda: self._views().zoom_all(1 / 1.25), QKeySequence.StandardKey.ZoomOut)
        self._action(view, "&Fit to Window", lambda: self._views().fit_all(), QKeySequence("Ctrl+0"))
        self._action(view, "&Actual Pixels", lambda: self._views().actual_size(), QKeySequence("Ctrl+Alt+0"))
        view.addSeparator()
        self._action(view, "Side by Side", lambda: self.embed.set_view_mode("side"), QKeySequence("Ctrl+B"))
        self._action(view, "Split View", lambda: self.embed.set_view_mode("split"), QKeySequence("Ctrl+Shift+B"))

        tools = menus.addMenu("&Tools")
        self._action(tools, "&Decode", self.verify.decode, QKeySequence("Ctrl+D"), "Decode in the Verify tab")
        self._action(tools, "&Auto Strength", self.embed.run_auto_strength, QKeySequence("Ctrl+Shift+A"))
        remove = self._action(tools, "Remove Image", self.embed.remove_current, QKeySequence.StandardKey.Delete)
        remove.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.embed.addAction(remove)
        self.cancel_action = self._action(tools, "Cancel Running Operation", self._cancel_running, QKeySequence("Esc"))

        help_menu = menus.addMenu("&Help")
        self._action(help_menu, f"{APP_NAME} &Help", self.show_help, QKeySequence.StandardKey.HelpContents)
        self._action(help_menu, f"&About {APP_NAME}", self.about)
        self._action(help_menu, "About &Qt", QApplication.aboutQt)

    def _views(self):
        """The views View ▸ Zoom acts on: the current tab's, else the Embed tab's."""
        return self.tabs.currentWidget().view_sync() or self.embed.view_sync()

    def _connect(self) -> None:
        ctx = self.ctx
        ctx.models.changed.connect(self._show_model)
        ctx.models.loading.connect(self._show_model)
        ctx.tasks.ended.connect(self._task_ended)
        self.embed.state_changed.connect(self._update_actions)
        self.embed.send_to_verify.connect(self._verify_from_embed)
        for tab in (self.embed, self.verify):
            tab.open_models.connect(lambda: self.tabs.setCurrentWidget(self.models))
            tab.saved.connect(lambda path: self.statusBar().showMessage(f"Saved {path}", 6000))
        for tab in self.all_tabs:
            tab.status.connect(lambda text: self.statusBar().showMessage(text, 8000))
            tab.show_requested.connect(lambda t=tab: self.tabs.setCurrentWidget(t))
        self.train.model_exported.connect(lambda _name: self.tabs.setCurrentWidget(self.models))
        self.tabs.currentChanged.connect(lambda _i: self._update_actions())

    # ------------------------------------------------------------ status

    def _show_model(self) -> None:
        self.model_label.setText(self.ctx.models.describe())
        self.model_label.setToolTip(self.ctx.models.problem or "")
        self.device_label.setText(f"Device: {self.ctx.models.device.upper()}")

    def _task_ended(self, task: Task) -> None:
        if task.quiet:
            return
        if task.status == "done":
            self.timing_label.setText(f"{task.name}: {task.elapsed:.2f} s")
        elif task.status == "cancelled":
            self.timing_label.setText(f"{task.name}: cancelled")
            self.statusBar().showMessage(f"{task.name} cancelled", 5000)
        elif task.status == "failed":
            self.timing_label.setText(f"{task.name}: failed")
        self._update_actions()

    def _update_actions(self) -> None:
        current = self.tabs.currentWidget()
        can_save = current.can_save()
        self.save_action.setEnabled(can_save)
        self.save_as_action.setEnabled(can_save)
        self.save_all_action.setEnabled(self.embed.has_documents())
        self.open_action.setEnabled(current.can_open())
        unsaved = sum(tab.unsaved_count() for tab in self.all_tabs)
        # Qt appends " — MBRS Studio" (the application display name) itself; an empty title shows it alone
        self.setWindowTitle(f"{unsaved} unsaved image(s)[*]" if unsaved else "")
        self.setWindowModified(bool(unsaved))

    # ------------------------------------------------------------ file actions

    def _opening_tab(self):
        """The tab that File ▸ Open serves: the current one if it opens files, else Embed (brought forward)."""
        current = self.tabs.currentWidget()
        if current.can_open():
            return current
        self.tabs.setCurrentWidget(self.embed)
        return self.embed

    def open_dialog(self) -> None:
        self._opening_tab().choose_files()

    def open_paths(self, paths: list[str | Path]) -> None:
        """Open files given on the command line or from the recent list (in the current tab if it opens files)."""
        paths = [Path(p) for p in paths]
        if paths:
            self._opening_tab().open_files(paths)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.ctx.settings.recent_files()
        for path in recent:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent Files").triggered.connect(self.ctx.settings.clear_recent)

    def save(self, ask: bool) -> None:
        self.tabs.currentWidget().save(ask=ask)

    def _verify_from_embed(self, data) -> None:
        self.verify.set_input(data)
        self.tabs.setCurrentWidget(self.verify)

    # ------------------------------------------------------------ dialogs

    def preferences(self) -> None:
        dialog = PreferencesDialog(self.ctx, self)
        if dialog.exec() != PreferencesDialog.DialogCode.Accepted:
            return
        values = dialog.values()
        device_changed = values["device"] != self.ctx.models.device
        for key, value in values.items():
            self.ctx.settings.set(key, value)
        apply_theme(QApplication.instance(), values["theme"])
        for tab in self.all_tabs:
            tab.apply_preferences(values)
        self.ctx.theme_changed.emit(values["theme"])
        self.ctx.settings.save()
        if device_changed:
            self.ctx.models.reload()
        self._show_model()

    def _cancel_running(self) -> None:
        """Esc: cancel the running operation, unless the key was meant for an open menu or popup."""
        if QApplication.activePopupWidget() is None:
            self.busy.cancel()

    def shortcuts(self) -> list[tuple[str, str]]:
        """(action, key) of every menu action with a shortcut."""
        return [(a.text().replace("&", ""), a.shortcut().toString(QKeySequence.SequenceFormat.NativeText))
                for menu in self.menuBar().findChildren(QMenu) for a in menu.actions() if not a.shortcut().isEmpty()]

    def show_help(self) -> None:
        HelpDialog(self.shortcuts(), self).exec()

    def about(self) -> None:
        AboutDialog(self.ctx, app_icon(), self).exec()

    # ------------------------------------------------------------ geometry and closing

    def _restore_geometry(self) -> None:
        geometry, state = self.ctx.settings.get("geometry"), self.ctx.settings.get("window_state")
        restored = False
        if geometry:
            try:
                restored = self.restoreGeometry(QByteArray(base64.b64decode(geometry)))
            except ValueError:
                restored = False
        if state:
            try:
                self.restoreState(QByteArray(base64.b64decode(state)))
            except ValueError:
                pass
        if not restored:
            self.resize(1440, 900)

    def _remember_geometry(self) -> None:
        settings = self.ctx.settings
        settings.set("geometry", base64.b64encode(bytes(self.saveGeometry())).decode("ascii"))
        settings.set("window_state", base64.b64encode(bytes(self.saveState())).decode("ascii"))
        for tab in self.all_tabs:
            tab.remember(settings)

    def confirm_close(self) -> bool:
        """Ask each tab what closing would lose (unsaved images, a running training); False keeps the window open."""
        return all(tab.confirm_close(self) for tab in self.all_tabs)

    def closeEvent(self, event) -> None:
        if not self.confirm_close():
            event.ignore()
            return
        self._remember_geometry()
        try:
            self.ctx.settings.save()
        except OSError:
            pass  # settings are a convenience; never block quitting on them
        self.ctx.tasks.cancel_all()
        self.ctx.tasks.wait_done(10_000)
        event.accept()
