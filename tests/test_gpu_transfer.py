"""The lent-GPU path: scripts/gpu_train.py runs without the packages that machine lacks, and what it returns
fits what comes back (at most 8 files of at most 16 MB) and loads here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from mbrs_engine.nets.precision import native_bf16
from mbrs_engine.train import preset, transfer
from mbrs_engine.train.checkpoint import checkpoint_exists, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
#: not on the GPU machine (DEVELOPERS.md), or not wanted there
MISSING_THERE = ("bchlib", "kornia", "platformdirs", "PySide6", "pyqtgraph")
BLOCKER = f"""
import sys
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {MISSING_THERE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Missing())
"""
RETURN_LIMIT_FILES, RETURN_LIMIT_BYTES = 8, 16_000_000


def _state(seed=0, big=0):
    g = torch.Generator().manual_seed(seed)
    state = {"step": 7, "best_ber": 0.125, "elapsed": 3.5, "config": {"a": [1, 2]}, "history": [{"step": 7}],
             "encoder": {"w": torch.randn(3, 5, generator=g), "n": torch.tensor(4)},
             "decoder": {"big": torch.randn(big or 10, generator=g), "bn.num_batches_tracked": torch.tensor(9)}}
    return state


def _same(a, b):
    assert {k: v for k, v in a.items() if k not in transfer.NETWORKS} == \
        {k: v for k, v in b.items() if k not in transfer.NETWORKS}
    for net in transfer.NETWORKS:
        assert a.get(net, {}).keys() == b.get(net, {}).keys()
        for k, v in a.get(net, {}).items():
            assert v.dtype == b[net][k].dtype and torch.equal(v, b[net][k]), (net, k)


def test_parts_round_trip_exactly_and_split_tensors_larger_than_a_file(tmp_path):
    state = _state(big=1000)                       # 4,000 bytes of one tensor in files of 1,000 bytes
    files = transfer.write_parts(state, tmp_path, "best", max_file_bytes=1000)
    assert len(files) >= 4 and all(f.name.endswith(f"of{len(files)}.safetensors") for f in files)
    assert all(f.stat().st_size < 1000 + 2000 for f in files)              # payload + a small header
    _same(state, transfer.read_parts(tmp_path, "best"))
    _same(state, load_checkpoint(tmp_path / "best.ckpt"))                  # as if it were one file
    assert checkpoint_exists(tmp_path / "best.ckpt") and not checkpoint_exists(tmp_path / "last.ckpt")


def test_fp16_parts_are_half_the_size_and_come_back_in_the_original_dtype(tmp_path):
    state = _state(big=4000)
    full = sum(f.stat().st_size for f in transfer.write_parts(state, tmp_path / "a", "best"))
    half = sum(f.stat().st_size for f in transfer.write_parts(state, tmp_path / "b", "best", torch.float16))
    assert half < 0.6 * full
    back = transfer.read_parts(tmp_path / "b", "best")
    assert back["decoder"]["big"].dtype == torch.float32
    assert torch.allclose(back["decoder"]["big"], state["decoder"]["big"], rtol=1e-3, atol=1e-4)
    assert torch.equal(back["encoder"]["n"], state["encoder"]["n"])
    state["decoder"]["big"][0] = 1e6                                        # beyond fp16
    with pytest.raises(ValueError, match="wider type"):
        transfer.write_parts(state, tmp_path / "c", "best", torch.float16)


def test_a_missing_part_or_a_rewrite_with_fewer_parts_is_caught(tmp_path):
    files = transfer.write_parts(_state(big=1000), tmp_path, "best", max_file_bytes=1000)
    transfer.write_parts(_state(1), tmp_path, "best")                      # rewrite: old parts removed
    assert len(transfer.existing_parts(tmp_path, "best")) == 1
    _same(_state(1), load_checkpoint(tmp_path / "best.ckpt"))
    files = transfer.write_parts(_state(big=1000), tmp_path, "best", max_file_bytes=1000)
    files[1].unlink()
    with pytest.raises(ValueError, match="incomplete"):
        load_checkpoint(tmp_path / "best.ckpt")


@pytest.mark.parametrize("name, expected", [
    ("default-model-39", [("best", torch.float32), ("last", torch.float32)]),
    ("paper-128-64", [("best", torch.float16)]),           # the faithful decoder: 80 MiB in fp32
])
def test_what_returns_from_each_preset_fits_in_five_files(name, expected):
    network = preset(name).network
    plan = transfer.return_plan(transfer.network_bytes(network, False), transfer.network_bytes(network, True), 5)
    assert plan == expected
    with pytest.raises(ValueError, match="do not fit"):
        transfer.return_plan(10 * transfer.MAX_FILE_BYTES, 10 * transfer.MAX_FILE_BYTES, 4)


def _gpu_train_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("gpu_train", REPO / "scripts" / "gpu_train.py")
    module = sys.modules["gpu_train"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    """A few sample photos (tests only) standing in for data/pack."""
    photos = tmp_path_factory.mktemp("pack")
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "camera"]):
        Image.fromarray(getattr(skdata, name)()).resize((200, 150)).save(photos / f"{i}.png")
    return photos


#: bf16 autocast on a CPU without bf16 kernels (the suite's AVX2 pass) takes minutes even for 4 steps: the two
#: large networks run in fp32 here, the prepared precision (GPU_SETS) is kept for the small one where this CPU
#: computes bf16 (6.8 s; 31 s emulated with AVX2 kernels, AMD EPYC)
FP32 = ["--set", "precision=fp32"]
PRECISION_HERE = {"table1": FP32, "default": FP32, "continue": [] if native_bf16("cpu") else FP32}


@pytest.mark.parametrize("run", [pytest.param("table1", marks=pytest.mark.slow),  # 34 s: make test-all runs it
                                 "default", "continue"])
def test_each_prepared_gpu_run_works_without_the_packages_that_machine_lacks_and_its_results_load_here(
        run, pack_dir, tmp_path):
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "block"), str(REPO)]),
           "PYTHONUNBUFFERED": "1"}
    probe = subprocess.run([sys.executable, "-c", "import bchlib"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'bchlib'" in probe.stderr     # the blocker works
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "scripts/gpu_train.py", "train", "--run", run, "--data", str(pack_dir), "--out", str(out),
         "--budget", "5m", "--set", "steps=4", "--set", "batch_size=2", "--set", "data.val_count=2",
         "--set", "data.workers=0", "--set", "validation.every_steps=2", "--set", "optim.finetune_steps=0",
         *PRECISION_HERE[run]],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    gpu_train = _gpu_train_module()
    network = preset(gpu_train.RUNS[run].preset).network
    plan = transfer.return_plan(transfer.network_bytes(network, False), transfer.network_bytes(network, True),
                                gpu_train.MAX_FILES - len(gpu_train.TEXT_FILES))
    files = sorted(p.name for p in out.iterdir())
    parts = [f for f in files if f.endswith(".safetensors")]
    assert sorted(set(files) - set(parts)) == ["config.json", "history.jsonl", "summary.txt"]
    assert {f.split("-")[0] for f in parts} == {stem for stem, _ in plan}
    assert len(files) <= RETURN_LIMIT_FILES
    assert all((out / f).stat().st_size <= RETURN_LIMIT_BYTES for f in files)
    summary = (out / "summary.txt").read_text()
    assert "steps 4 x batch 2 = 8 images" in summary and "images/s" in summary and "validation curve" in summary
    assert len(summary.splitlines()) <= 25 and summary in proc.stdout
    assert [json.loads(line)["step"] for line in (out / "history.jsonl").read_text().splitlines()] == [2, 4]
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["train_dir"] == str(pack_dir) and config["init_from"] == gpu_train.RUNS[run].init_from
    assert config["data"]["cache_dir"] == ""
    assert load_checkpoint(out / "best.ckpt")["step"] in (2, 4)

    from mbrs_engine import Watermarker
    from mbrs_engine.cli import main
    assert main(["export", str(out), "-o", str(tmp_path / "models"), "--name", "gpu"]) == 0
    wm = Watermarker.from_pretrained(tmp_path / "models" / "gpu.json")
    bits = np.zeros(wm.message_length, np.uint8)
    marked = wm.embed_bits(Image.fromarray(skdata.astronaut()[:128, :128]), bits, refine=False)
    assert marked.size == (128, 128)
