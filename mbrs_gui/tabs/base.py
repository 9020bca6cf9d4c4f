"""What the main window asks of every tab: it loops over its tabs through these methods, never inside them.

Each tab (a ``QWidget``) also inherits :class:`Tab`; the defaults are for a
tab that opens, saves and zooms nothing and never holds up closing.
"""
from __future__ import annotations

from pathlib import Path


class Tab:
    #: the tab's title in the window
    title = ""

    def can_open(self) -> bool:
        """Whether File ▸ Open (and files given on the command line) go to this tab."""
        return False

    def choose_files(self) -> None:
        """File ▸ Open: ask for files to open here."""

    def open_files(self, paths: list[Path]) -> None:
        """Open these files here (the first only, for a tab that shows one)."""

    def can_save(self) -> bool:
        return False

    def save(self, ask: bool = True) -> None:
        """File ▸ Save (``ask``: Save As)."""

    def view_sync(self):
        """The views that View ▸ Zoom acts on, or None."""
        return None

    def unsaved_count(self) -> int:
        """Work that closing the window would lose (said in the title)."""
        return 0

    def apply_preferences(self, values: dict) -> None:
        """Preferences were accepted (``theme``, ``device``, ``save_quality``; the theme is already applied)."""

    def remember(self, settings) -> None:
        """Store what the tab restores next time (the window is closing)."""

    def confirm_close(self, parent) -> bool:
        """Ask what closing would lose; False keeps the window open."""
        return True
