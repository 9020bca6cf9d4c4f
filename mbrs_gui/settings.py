"""The app's remembered settings: theme, window geometry, recent files, last folders and preferences.

Stored as JSON (``gui.json``) beside the engine's own ``config.json`` in the
platform's config folder (:func:`mbrs_engine.model_files.user_config_path`,
which honours ``$MBRS_CONFIG_DIR``).  Writes are atomic; an unreadable file is
set aside and the defaults are used, so a damaged file never stops the app.
"""
from __future__ import annotations

import json
from pathlib import Path

from mbrs_engine.imageio import atomic_write
from mbrs_engine.model_files import user_config_path

THEMES = ("dark", "light")
MAX_RECENT = 10
DEFAULTS = {
    "theme": "dark",
    "device": "cpu",
    "save_quality": 95,
    "save_format": "png",
    "view_mode": "side",
    "recent_files": [],
    "folders": {},
    "geometry": "",
    "window_state": "",
    "strength": 1.0,
    "refine": True,
    "tiles": True,
    "auto_attack": "jpeg:50",
}


def settings_path() -> Path:
    return user_config_path().parent / "gui.json"


class Settings:
    """Dictionary-like settings with typed helpers; :meth:`save` writes them."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else settings_path()
        self.data = dict(DEFAULTS)
        self.load_error: str | None = None
        self._load()

    def _load(self) -> None:
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.load_error = f"the settings file '{self.path}' could not be read ({exc}); defaults are used"
            return
        if isinstance(stored, dict):
            self.data.update({k: v for k, v in stored.items() if k in DEFAULTS and isinstance(v, type(DEFAULTS[k]))})
        if self.data["theme"] not in THEMES:
            self.data["theme"] = DEFAULTS["theme"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.data, indent=2, ensure_ascii=False) + "\n"
        atomic_write(self.path, lambda fh: fh.write(text.encode("utf-8")))

    def get(self, key: str):
        return self.data.get(key, DEFAULTS.get(key))

    def set(self, key: str, value) -> None:
        self.data[key] = value

    # ------------------------------------------------------------ recent files and folders

    def recent_files(self) -> list[str]:
        return [p for p in self.data["recent_files"] if isinstance(p, str)]

    def add_recent(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        recent = [p for p in self.recent_files() if p != path]
        self.data["recent_files"] = [path, *recent][:MAX_RECENT]

    def clear_recent(self) -> None:
        self.data["recent_files"] = []

    def folder(self, purpose: str, fallback: str | Path | None = None) -> str:
        """The last folder used for ``purpose`` (open, save, train, models...), else ``fallback`` (when it is a
        folder), else the home folder."""
        folder = self.data["folders"].get(purpose)
        if isinstance(folder, str) and Path(folder).is_dir():
            return folder
        return str(fallback) if fallback is not None and Path(fallback).is_dir() else str(Path.home())

    def remember_folder(self, purpose: str, path: str | Path) -> None:
        path = Path(path)
        self.data["folders"][purpose] = str(path if path.is_dir() else path.parent)
