"""Screenshots for the README, from a real window: docs/screenshots/*.png

    xvfb-run -s "-screen 0 1600x1000x24" python scripts/take_screenshots.py [--model PATH.json | --tiny]

The app runs on sample photos from scikit-image (a test dependency) with its
model registry and settings in a temporary folder, so the user's own are
never touched.  It shows the shipped default model, another model with
``--model``, or (``--tiny``) a tiny demonstration model trained first.  The
Train tab's screenshot is of a real, short training run on the sample photos.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

WORK = Path(tempfile.mkdtemp(prefix="mbrs-screenshots-"))
os.environ["MBRS_MODELS_DIR"] = str(WORK / "models")
os.environ["MBRS_CONFIG_DIR"] = str(WORK / "config")

from PIL import Image  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402

MESSAGE = "Jane Doe 2025"
SIZE = (1440, 900)


def pump(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(condition, timeout: float = 300.0) -> None:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the app did not get there in time")
        pump(100)


def idle(window) -> bool:
    return (not window.ctx.tasks.active(include_quiet=True) and not window.embed._embed_timer.isActive()
            and not window.embed._refine_timer.isActive() and not window.verify._preview_timer.isActive())


def install_model(path: str | None, tiny: bool = False) -> None:
    """Show ``path``'s model, the tiny demonstration model (``tiny``), or else the shipped default."""
    from mbrs_engine.model_files import ModelMetadata, install_model, save_model, set_default_model

    if path is None and not tiny:
        return
    if path is None:
        from tiny_model import TinyTraining, train_tiny_model

        print("training the tiny model (no --model given)…", flush=True)
        encoder, decoder, config, seconds = train_tiny_model(TinyTraining(steps=400, image_weight=4.0))
        folder = WORK / "tiny"
        folder.mkdir()
        meta = ModelMetadata(name="tiny-demo", description="Tiny demonstration model (32×32, L=256), trained in "
                             f"{seconds:.0f} s on scikit-image sample crops", training_noise="8-bit rounding + "
                             "resampling", training_data="scikit-image sample photos")
        path = str(save_model(folder, encoder, decoder, config, meta).json_path)
    info = install_model(path)
    set_default_model(info.name)


def sample_folder() -> Path:
    import skimage.data

    folder = WORK / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"):
        Image.fromarray(getattr(skimage.data, name)()[..., :3]).save(folder / f"{name}.png")
    return folder


def batch_folder(wm, photos: Path) -> Path:
    """What a newsroom might be sent: two marked photos (one re-encoded and cropped), an unmarked one, a broken file."""
    from mbrs_engine.attacks import apply_chain, parse_chain

    folder = WORK / "received"
    folder.mkdir()
    marked = wm.embed(Image.open(photos / "coffee.png").convert("RGB"), MESSAGE)
    marked.save(folder / "coffee-from-agency.png")
    apply_chain(wm.embed(Image.open(photos / "chelsea.png").convert("RGB"), MESSAGE),
                parse_chain("crop:0.8+jpeg:80")).save(folder / "chelsea-reposted.jpg", quality=95)
    Image.open(photos / "rocket.png").save(folder / "rocket-unknown-source.png")
    (folder / "truncated-upload.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    return folder


def screenshot_html(page: Path, target: Path) -> None:
    """A headless Chromium screenshot of an HTML file (skipped, with a note, when Chromium is not installed)."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print(f"no Chromium: {target} not taken", flush=True)
        return
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={target}", "--window-size=1200,1000", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    print(target, flush=True)


def grab(window, name: str, out: Path) -> None:
    pump(400)
    path = out / f"{name}.png"
    window.grab().save(str(path))
    print(path, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model .json to show (default: the shipped default model)")
    parser.add_argument("--tiny", action="store_true", help="train and show the tiny test model instead")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--theme", default="dark", choices=("dark", "light"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    install_model(args.model, args.tiny)
    photos = sample_folder()

    from mbrs_gui.app import build_window, create_app
    from mbrs_gui.attack_chain import Step
    from mbrs_gui.settings import Settings

    app = create_app([sys.argv[0]])
    settings = Settings()
    settings.set("theme", args.theme)
    window = build_window(settings)
    window.resize(*SIZE)
    window.show()
    wait_until(lambda: not window.ctx.models.is_loading)

    # Embed: three photos, a message, a strength, split view
    embed = window.embed
    embed.open_files([photos / "astronaut.png", photos / "coffee.png", photos / "chelsea.png"])
    wait_until(lambda: len(embed.docs) == 3)
    embed.message.setText(MESSAGE)
    embed.spin.setValue(1.1)
    wait_until(lambda: idle(window))
    embed.views.set_mode("split")
    embed.views.split.set_split(0.45)
    wait_until(lambda: idle(window))
    grab(window, "embed", out)


    # Verify: the embedded image cropped off-centre, turned and re-saved, decoded (the tiles found outlined on
    # the attacked image), and the sweep
    embed.views.set_mode("side")
    embed.verify_button.click()
    verify = window.verify
    verify.editor.add(Step("crop", (0.8, 1.2, 0.8, 0.3)))
    verify.editor.add(Step("rotate", (2.0,)))
    verify.editor.add(Step("jpeg", (80,)))
    wait_until(lambda: idle(window))
    verify.decode()
    wait_until(lambda: idle(window))
    verify.run_sweep()
    wait_until(lambda: idle(window))
    grab(window, "verify", out)

    # Verify a folder: marked, attacked, unmarked and broken files; the table and the HTML evidence report
    folder = batch_folder(window.ctx.models.wm, photos)
    verify.verify_folder(folder)
    wait_until(lambda: idle(window) and verify.batch_dialog is not None)
    dialog = verify.batch_dialog
    dialog.resize(1100, 420)
    grab(dialog, "verify-folder", out)
    from mbrs_engine.verification import write_html
    report = write_html(dialog.verdicts, WORK / "report.html", dialog.models)
    screenshot_html(report, out / "verify-report.png")
    dialog.close()

    # Train: a short real run on the sample photos
    train = window.train
    window.tabs.setCurrentWidget(train)
    train.folder.setText(str(photos))
    train.scan_folder(str(photos))
    wait_until(lambda: train.scan is not None)
    train.preset.setCurrentText("cpu-small")
    for spin, value in ((train.image_size, 64), (train.message_length, 64), (train.channels, 16),
                        (train.blocks, 1), (train.batch_size, 8), (train.steps, 60), (train.val_count, 2),
                        (train.validation_every, 10), (train.sample_every, 20)):
        spin.setValue(value)
    train.run_folder.setText(str(WORK / "runs" / "my-photos"))
    train.start()
    wait_until(lambda: train.state in ("finished", "cancelled", "failed"), timeout=900)
    train.model_name.setText("my-photos-64")
    grab(window, "train", out)
    window.resize(1024, 700)  # the smallest window the layout is made for
    grab(window, "train-1024x700", out)
    window.resize(*SIZE)

    # Models: export the run, measure the demo model on the photos, then the list
    train.make_default.setChecked(False)
    train.export()
    wait_until(lambda: idle(window))
    models = window.models
    window.tabs.setCurrentWidget(models)
    models.refresh()
    models.measure(models.selected(), photos)
    wait_until(lambda: idle(window))
    grab(window, "models", out)

    # Embed, side by side, the third view showing where the mark may show (the rocket's flat sky)
    window.tabs.setCurrentWidget(embed)
    embed.views.set_mode("side")
    count = len(embed.docs)
    embed.open_files([photos / "rocket.png"])
    wait_until(lambda: len(embed.docs) == count + 1 and idle(window))
    embed.views.show_third("visibility")
    wait_until(lambda: idle(window))
    grab(window, "embed-visibility", out)

    for doc in embed.docs.values():
        doc.saved_state = doc.state()
    window.close()
    app.quit()


if __name__ == "__main__":
    main()
