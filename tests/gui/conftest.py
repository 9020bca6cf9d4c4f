"""GUI test fixtures: offscreen Qt, the tiny model installed as the default, captured dialogs, sample photos.

QT_QPA_PLATFORM is set before anything imports Qt, so the tests need no
display (and CI no apt packages).  The engine's ``tests/conftest.py`` already
points the model registry and the settings at a fresh temporary folder for
every test and trains the tiny model once per session.
"""
from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtWidgets import QInputDialog, QMessageBox  # noqa: E402

from tiny_model import sample_photos  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The machine is shared: one intra-op thread is plenty for the tiny model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Dialogs:
    """What the app showed instead of real modal dialogs."""

    shown: list[tuple[str, str, str]] = field(default_factory=list)  # (icon name, text, details)
    questions: list[str] = field(default_factory=list)
    answers: list = field(default_factory=list)  # QMessageBox.StandardButton to return, in order
    default_answer: object = QMessageBox.StandardButton.Yes
    texts: list[str] = field(default_factory=list)  # QInputDialog.getText answers

    def errors(self) -> list[tuple[str, str, str]]:
        return [d for d in self.shown if d[0] == "Critical"]


@pytest.fixture
def dialogs(monkeypatch) -> Dialogs:
    captured = Dialogs()

    def exec_(box):
        captured.shown.append((box.icon().name, box.text(), box.detailedText()))
        return QMessageBox.StandardButton.Ok

    def question(parent, title, text, *args, **kwargs):
        captured.questions.append(text)
        return captured.answers.pop(0) if captured.answers else captured.default_answer

    def get_text(parent, title, label, *args, text="", **kwargs):
        return (captured.texts.pop(0) if captured.texts else text), True

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(get_text))
    return captured


@pytest.fixture(autouse=True)
def unrefined_embedding(request, isolated_user_dirs):
    """The Embed tab's refinement off unless a test asks for it (``@pytest.mark.refine``): it takes about a
    second per embedding with the tiny model, and the tests that are not about it embed dozens of times."""
    if request.node.get_closest_marker("refine") is None:
        from mbrs_gui.settings import Settings

        settings = Settings()
        settings.set("refine", False)
        settings.save()


@pytest.fixture
def installed_model(tiny_model_path):
    """The tiny model copied into this test's models folder and made the default."""
    from mbrs_engine.model_files import install_model, set_default_model

    info = install_model(tiny_model_path, "tiny")
    set_default_model("tiny")
    return info


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    """Six small photos (scikit-image samples, test data only) as PNG files."""
    folder = tmp_path_factory.mktemp("photos")
    for i, photo in enumerate(sample_photos()):
        img = Image.fromarray(photo)
        img.thumbnail((192, 192))
        img.save(folder / f"photo{i}.png")
    return folder


@pytest.fixture
def photo(photo_folder) -> Path:
    return photo_folder / "photo0.png"


def make_window(qtbot, files=None):
    from mbrs_gui.app import build_window, create_app

    create_app()
    window = build_window(files=files)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.ctx.models.is_loading, timeout=20_000)
    return window


def wait_idle(qtbot, window, timeout: int = 60_000) -> None:
    """Until no background task runs and no debounce timer is pending."""
    embed = window.embed

    def idle():
        return (not window.ctx.tasks.active(include_quiet=True) and not embed._embed_timer.isActive()
                and not embed._refine_timer.isActive() and not window.verify._preview_timer.isActive())

    qtbot.waitUntil(idle, timeout=timeout)


@pytest.fixture
def window(qtbot, installed_model, dialogs):
    win = make_window(qtbot)
    yield win
    _close(qtbot, win)


@pytest.fixture
def bare_window(qtbot, dialogs):
    """The app with no model installed at all."""
    win = make_window(qtbot)
    yield win
    _close(qtbot, win)


def _close(qtbot, win) -> None:
    for doc in win.embed.docs.values():  # tests that leave unsaved images do not want the prompt here
        doc.saved_state = doc.state()
    if win.train.is_running():
        win.train.stop_and_wait()
    win.ctx.tasks.cancel_all()
    win.ctx.tasks.wait_done(30_000)
    win.close()
    # the closed window's Qt objects are collected here, in the GUI thread: left to the next collection, it can
    # run in a worker thread (the next window's model loading) and delete them there, which segfaulted CI once
    gc.collect()


def random_bytes_file(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return path
