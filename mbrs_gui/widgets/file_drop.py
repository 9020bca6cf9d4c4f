"""Dropping files on a tab: a mixin that accepts local files and hands their paths to ``open_dropped``."""
from __future__ import annotations

from pathlib import Path


def local_paths(mime) -> list[Path]:
    """The local files in a drag's MIME data (none for text, remote URLs, ...)."""
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []


class FileDropTarget:
    """Put before the Qt widget class: ``class EmbedTab(FileDropTarget, QWidget)``; define ``open_dropped``."""

    def open_dropped(self, paths: list[Path]) -> None:
        raise NotImplementedError

    def dragEnterEvent(self, event) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.open_dropped(paths)
