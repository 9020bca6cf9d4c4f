"""Shared fixtures: isolated model/config folders, and the tiny trained model (tests/fixtures/tiny-model)."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tiny_model import FIXTURE, random_crops


@pytest.fixture(scope="session", autouse=True)
def threads_per_worker():
    """With several pytest-xdist workers (``make test``), each gets its share of the cores for torch: threads
    beyond the cores only fight over them."""
    import torch  # here: mbrs_engine (imported above) sets the OpenMP wait policy before torch loads

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Never touch the real user models folder or settings."""
    monkeypatch.setenv("MBRS_MODELS_DIR", str(tmp_path / "user-models"))
    monkeypatch.setenv("MBRS_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))     # the trainer's image cache


@pytest.fixture
def no_shipped_models(tmp_path, monkeypatch):
    """A machine without the shipped models (as before the default model existed, or a broken install)."""
    import mbrs_engine.model_files as mf

    monkeypatch.setattr(mf, "shipped_models_dir", lambda: tmp_path / "no-shipped-models")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """The tiny model (:mod:`tiny_model`), a copy of the saved one per session; the path of its JSON."""
    from mbrs_engine.model_files import load_model

    folder = tmp_path_factory.mktemp("tiny-model")
    for path in FIXTURE.iterdir():
        shutil.copyfile(path, folder / path.name)
    try:
        load_model(folder / "tiny.json")
    except Exception as error:  # the networks' layers changed since it was saved
        pytest.fail(f"the saved tiny model does not load ({error}): run python tests/tiny_model.py")
    return folder / "tiny.json"


@pytest.fixture(scope="session")
def tiny_wm(tiny_model_path):
    """The tiny model, embedding with a short refinement (10 steps) to keep the suite fast; the default
    refinement is tested in tests/test_refinement.py."""
    from mbrs_engine import Watermarker
    from mbrs_engine.refinement import RefineConfig

    return Watermarker.from_pretrained(tiny_model_path, refine=RefineConfig(steps=10))


@pytest.fixture(scope="session")
def frame_wm(tiny_wm):
    """The tiny model with the whole-frame layout only (no tiles): what the frame search is tested on."""
    from mbrs_engine import Watermarker

    return Watermarker(tiny_wm.encoder, tiny_wm.decoder, tiny_wm.config, name="tiny", refine=tiny_wm.refine,
                       tiled=False)


@pytest.fixture(scope="session")
def sample_images():
    """Natural test images of assorted sizes (RGB PIL), from scikit-image's samples."""
    crops = random_crops(6, 160, seed=123)
    sizes = [(32, 32), (97, 61), (128, 32), (160, 120), (61, 97), (200, 150)]
    return [Image.fromarray(c).resize(s, Image.Resampling.BICUBIC) for c, s in zip(crops, sizes)]


@pytest.fixture
def rng():
    return np.random.default_rng(0)
