"""Run under torchrun by tests/test_train.py: a few DDP steps on CPU (gloo), then a digest of the weights per rank."""
import hashlib
import sys
import warnings

from mbrs_engine.nets import NetworkConfig
from mbrs_engine.train import TrainConfig, Trainer

warnings.simplefilter("ignore")
data_dir, run_dir, out = sys.argv[1:4]
cfg = TrainConfig(network=NetworkConfig(32, 16, channels=16, blocks=1), noise="Combined([JpegMask(),Identity()])",
                  batch_size=4, steps=3, target_psnr=30.0)
cfg.data.train_dir, cfg.data.val_count, cfg.data.workers = data_dir, 2, 0
trainer = Trainer(cfg, run_dir)
trainer.run()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in trainer.decoder.parameters())).hexdigest()
with open(f"{out}.{trainer.world.rank}", "w") as f:
    f.write(f"{trainer.world.size} {trainer.step} {digest}\n")
