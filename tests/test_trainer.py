"""The Trainer: schedules, logging, checkpoints, bit-identical resume, DDP equivalence."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aekit import SAEConfig, SparseAutoencoder
from aekit.data import ArraySource
from aekit.train import TrainConfig, Trainer, learning_rate

from .helpers import small_data

REPO = Path(__file__).resolve().parents[1]


def _trainer(out_dir, source=None, steps=40, checkpoint_every=10, data=None, **kw):
    data = small_data() if data is None else data
    cfg = TrainConfig(steps=steps, batch_size=128, lr=3e-3, warmup_steps=5, checkpoint_every=checkpoint_every,
                      log_every=5, progress=False, init_samples=256, dead_after_samples=512, seed=3, **kw)
    model = SparseAutoencoder(SAEConfig(d_in=16, n_latents=64, k=3), seed=cfg.seed)
    return Trainer(model, source or ArraySource(data, cfg.batch_size, seed=cfg.seed), cfg, out_dir=out_dir)


class _InterruptAfter:
    """A source that raises KeyboardInterrupt after `limit` batches, like a user pressing Ctrl-C."""

    def __init__(self, inner, limit):
        self.inner, self.limit, self.count = inner, limit, 0

    def __iter__(self):
        for batch in self.inner:
            if self.count == self.limit:
                raise KeyboardInterrupt
            self.count += 1
            yield batch

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def test_learning_rate_schedule_warmup_plateau_decay():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, decay="linear", decay_start=0.8, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9) == pytest.approx(1.0)
    assert learning_rate(cfg, 50) == 1.0
    assert learning_rate(cfg, 90) == pytest.approx(0.55)
    cos = TrainConfig(steps=100, lr=1.0, warmup_steps=0, decay="cosine", decay_start=0.0)
    assert learning_rate(cos, 50) == pytest.approx(0.5)


def test_training_reduces_loss_and_logs_jsonl(tmp_path):
    result = _trainer(tmp_path, steps=60).fit()
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(5, 61, 5))
    assert log[-1]["mse"] < 0.65 * log[0]["mse"]
    assert {"lr", "loss", "mse", "l0", "dead_fraction", "samples"} <= set(log[0])
    assert result.steps == 60


def test_resume_after_interrupt_is_bit_identical(tmp_path):
    reference = _trainer(tmp_path / "a")
    reference.fit()
    data = small_data()
    # init reads 2 batches (rewound), then 23 training steps run before the interrupt; checkpoint at step 20
    interrupted = _trainer(tmp_path / "b", source=_InterruptAfter(ArraySource(data, 128, seed=3), 2 + 23))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert interrupted.step == 23
    resumed = _trainer(tmp_path / "b")
    assert resumed.resume() and resumed.step == 20
    resumed.fit()
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    for a, b in zip(reference.optimizer.state.values(), resumed.optimizer.state.values(), strict=True):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    log_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    log_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in log_a]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in log_b]


def test_checkpoints_carry_the_models_training_state(tmp_path):
    """The bfloat16 screen's pause is state outside the tensors: a resumed run must see the same pause."""
    trainer = _trainer(tmp_path, steps=10, checkpoint_every=10)
    trainer.fit()
    assert trainer.model.training_state() == {"screen_pause": 0}
    trainer.model._workspace["screen_pause"] = 37
    trainer.save_checkpoint()
    resumed = _trainer(tmp_path, steps=10, checkpoint_every=10)
    assert resumed.resume()
    assert resumed.model.training_state() == {"screen_pause": 37}


def test_checkpoints_are_pruned_and_hold_no_pickle(tmp_path):
    _trainer(tmp_path, steps=40, checkpoint_every=10, keep_checkpoints=2).fit()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step_00000030", "step_00000040"]
    files = {p.name for p in (tmp_path / "checkpoints" / "step_00000040").iterdir()}
    assert files == {"state.safetensors", "trainer.json"}


def test_killed_cli_run_resumes_to_identical_weights(tmp_path):
    """SIGKILL a real `aekit train` process mid-run, resume it, and compare with an uninterrupted run."""
    data = small_data(20000)
    np_path = tmp_path / "x.npy"
    import numpy as np

    np.save(np_path, data.numpy())
    args = ["--data", str(np_path), "--n-latents", "256", "--k", "4", "--steps", "1500", "--batch-size", "256",
            "--checkpoint-every", "100", "--progress", "false", "--seed", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "aekit", "train"]
    subprocess.run(cmd + args + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)

    proc = subprocess.Popen(cmd + args + ["--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 60
    while time.time() < deadline and not (ckpts.is_dir() and any(p.name.startswith("step_") for p in ckpts.iterdir())):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"
    subprocess.run(cmd + ["--resume", "--out", str(tmp_path / "killed")], check=True, env=env, capture_output=True)
    full = load_file(tmp_path / "full" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    for name in full:
        assert torch.equal(full[name], resumed[name]), name


DDP_SCRIPT = """
import sys, torch
from safetensors.torch import save_file
from aekit import SAEConfig, SparseAutoencoder
from aekit.data import ArraySource
from aekit.train import TrainConfig, Trainer
data = torch.load(sys.argv[1], weights_only=True)
cfg = TrainConfig(steps=30, batch_size=256, lr=3e-3, warmup_steps=5, checkpoint_every=0, progress=False,
                  init_samples=512, dead_after_samples=1024, seed=5, device="cpu")
model = SparseAutoencoder(SAEConfig(d_in=16, n_latents=64, k=3), seed=5)
trainer = Trainer(model, ArraySource(data, cfg.batch_size, seed=5), cfg)
trainer.fit()
if trainer.dist.rank == 0:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, sys.argv[2])
"""


def test_ddp_two_processes_match_one_process(tmp_path):
    data = small_data(8192)
    torch.save(data, tmp_path / "data.pt")
    (tmp_path / "run.py").write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "data.pt"), str(tmp_path / "one.st")],
                   check=True, env=env, capture_output=True)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "run.py"), str(tmp_path / "data.pt"), str(tmp_path / "two.st")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = load_file(tmp_path / "one.st"), load_file(tmp_path / "two.st")
    for name in one:
        assert torch.allclose(one[name], two[name], atol=2e-5, rtol=1e-4), (name, (one[name] - two[name]).abs().max())
    assert not torch.equal(one["W_dec"], SparseAutoencoder(SAEConfig(d_in=16, n_latents=64, k=3), seed=5).W_dec)




def test_cli_under_torchrun_writes_one_run_matching_a_single_process_run(tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", small_data(4096).numpy())
    args = ["train", "--data", str(tmp_path / "x.npy"), "--steps", "30", "--batch-size", "256", "--n-latents", "64",
            "--k", "3", "--progress", "false", "--checkpoint-every", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    single = subprocess.run([sys.executable, "-m", "aekit", *args, "--out", str(tmp_path / "one")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "aekit", *args, "--out", str(tmp_path / "two")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one = load_file(tmp_path / "one" / "model" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model" / "model.safetensors")
    for name in one:
        assert torch.allclose(one[name], two[name], atol=2e-5, rtol=1e-4), name
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 30 // 50 + 1
