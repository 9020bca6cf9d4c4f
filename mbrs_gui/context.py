"""What every tab shares: the settings, the task runner, and the current watermarking model.

The current model is the registry's default model
(:func:`mbrs_engine.model_files.default_model_name`), loaded in the
background.  When none is installed yet (:class:`NoDefaultModelError`) the
app still starts: :attr:`ModelManager.wm` stays ``None`` and
:attr:`ModelManager.problem` says why, for the tabs to show.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from mbrs_engine import Watermarker
from mbrs_engine.devices import available_devices
from mbrs_engine.model_files import NoDefaultModelError, default_model_name

from .errors import describe, show_error
from .settings import Settings
from .workers import TaskRunner

NO_MODEL_TEXT = ("No watermarking model is installed yet (the trained default model comes with a later release). "
                 "Import or train one in the Models and Train tabs.")


class ModelManager(QObject):
    """Loads the default model off the GUI thread; ``changed`` fires with the new state."""

    changed = Signal()
    loading = Signal()

    def __init__(self, tasks: TaskRunner, settings: Settings):
        super().__init__()
        self.tasks, self.settings = tasks, settings
        self.wm: Watermarker | None = None
        self.problem: str | None = None
        self.no_model = False
        self.is_loading = False

    @property
    def device(self) -> str:
        device = self.settings.get("device")
        return device if device in available_devices() else "cpu"

    def reload(self) -> None:
        """(Re)load the default model on the chosen device."""
        device = self.device
        self.is_loading = True
        self.loading.emit()

        def load(ctx):
            ctx.progress(0, 0, f"Loading model '{default_model_name()}'")
            try:
                return Watermarker.from_pretrained(None, device=device)
            except NoDefaultModelError:
                return None  # not a failure: the app runs without a model until one is installed

        self.tasks.run("Load model", load, on_result=self._loaded, on_error=self._failed, cancellable=False)

    def _loaded(self, wm: Watermarker | None) -> None:
        self.wm, self.is_loading = wm, False
        self.no_model = wm is None
        self.problem = NO_MODEL_TEXT if wm is None else None
        self.changed.emit()

    def _failed(self, exc: BaseException, details: str) -> None:
        self.wm, self.is_loading, self.no_model = None, False, False
        self.problem = f"The default model could not be loaded: {describe(exc)}"
        self.changed.emit()
        show_error(None, f"{self.problem}\n\nChoose another default model in the Models tab.", details)

    def describe(self) -> str:
        if self.is_loading:
            return "Model: loading…"
        if self.wm is None:
            return "Model: none"
        return f"Model: {self.wm.name} (H={self.wm.image_size}, L={self.wm.message_length})"


class AppContext(QObject):
    """Settings + tasks + model, handed to each tab."""

    theme_changed = Signal(str)
    models_changed = Signal()  # the installed models changed (import, export, new default)

    def __init__(self, settings: Settings, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.tasks = TaskRunner(self)
        self.models = ModelManager(self.tasks, settings)
