"""`aekit` happy paths: train from flags and from a config file, eval, info, --version, and one real process."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from aekit import __version__
from aekit.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUICK = ["--batch-size", "64", "--progress", "false", "--checkpoint-every", "0"]


def _run_outputs_ok(out: Path) -> dict:
    """Check a finished run directory; return the saved model's config.json."""
    model = out / "model"
    for path in (model / "config.json", model / "model.safetensors", out / "metrics.json", out / "metrics.jsonl",
                 out / "training.png"):
        assert path.is_file() and path.stat().st_size > 0, f"{path} missing or empty"
    assert (out / "training.png").read_bytes()[:8] == PNG_SIGNATURE
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mse", "fvu", "l0", "dead_fraction"):
        assert np.isfinite(metrics[key]), key
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert log and all(np.isfinite(r["loss"]) for r in log)
    return json.loads((model / "config.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "x.npy"
    np.save(path, np.random.default_rng(0).standard_normal((256, 8)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> tuple[Path, int, str]:
    """One run from flags, shared by the eval and info tests: (out dir, exit code, stdout)."""
    out = tmp_path_factory.mktemp("runs") / "flags"
    capture = tmp_path_factory.mktemp("runs") / "stdout.txt"
    with open(capture, "w") as f, contextlib.redirect_stdout(f):
        code = main(["train", "--data", str(data), "--out", str(out), "--steps", "5", "--n-latents", "16",
                     "--k", "2", "--lr", "3e-3", *QUICK])
    return out, code, capture.read_text()


def test_train_from_npy_with_flags(trained, data):
    out, code, stdout = trained
    assert code == 0
    meta = _run_outputs_ok(out)
    assert meta["kind"] == "sae" and meta["format_version"] == 1
    assert meta["config"]["d_in"] == 8 and meta["config"]["n_latents"] == 16 and meta["config"]["k"] == 2
    assert meta["provenance"]["dataset"] == str(data.resolve())
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["steps"] == 5 and run["train"]["lr"] == 3e-3 and run["train"]["batch_size"] == 64
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 5
    assert "mse:" in stdout and f"model: {out / 'model'}" in stdout


def test_train_from_yaml_config(tmp_path, data, capsys):
    out = tmp_path / "run"
    config = tmp_path / "sae.yaml"
    config.write_text(yaml.safe_dump({
        "data": str(data),
        "out": str(out),
        "model": {"architecture": "topk", "n_latents": 24, "k": 3},
        "train": {"steps": 6, "batch_size": 32, "lr": 2e-3, "progress": False, "checkpoint_every": 0,
                  "log_every": 2},
    }))
    assert main(["train", "--config", str(config)]) == 0
    assert "model:" in capsys.readouterr().out
    meta = _run_outputs_ok(out)
    assert meta["config"]["n_latents"] == 24 and meta["config"]["k"] == 3
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["steps"] == 6 and run["train"]["batch_size"] == 32 and run["train"]["log_every"] == 2
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6]


def test_flags_override_config_file(tmp_path, data, capsys):
    config = tmp_path / "sae.yaml"
    config.write_text(yaml.safe_dump({
        "data": str(tmp_path / "not-used.npy"),
        "out": str(tmp_path / "not-used"),
        "model": {"n_latents": 32, "k": 4},
        "train": {"steps": 50, "lr": 0.5, "batch_size": 64, "progress": False, "checkpoint_every": 0},
        "seed": 3,  # flat keys are routed to their section
    }))
    out = tmp_path / "run"
    code = main(["train", "--config", str(config), "--data", str(data), "--out", str(out),
                 "--n-latents", "16", "--steps", "4", "--lr", "1e-3"])
    capsys.readouterr()
    assert code == 0
    assert not (tmp_path / "not-used").exists()
    meta = _run_outputs_ok(out)
    assert meta["config"]["n_latents"] == 16  # flag
    assert meta["config"]["k"] == 4  # file
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["steps"] == 4 and run["train"]["lr"] == 1e-3  # flags
    assert run["train"]["batch_size"] == 64 and run["train"]["seed"] == 3  # file
    assert run["data"] == str(data.resolve())


def test_eval_json(trained, data, capsys):
    out = trained[0]
    assert main(["eval", str(out / "model"), "--data", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    for key in ("mse", "fvu", "l0", "dead_fraction"):
        assert isinstance(metrics[key], float) and np.isfinite(metrics[key]), key
    assert 0 < metrics["l0"] <= 2  # TopK with k=2
    assert 0 <= metrics["dead_fraction"] <= 1
    assert captured.err == ""


def test_eval_text(trained, data, capsys):
    assert main(["eval", str(trained[0] / "model"), "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip().startswith("fvu:") for line in lines)


def test_info(trained, capsys):
    assert main(["info", str(trained[0] / "model")]) == 0
    description = json.loads(capsys.readouterr().out)
    assert description["kind"] == "sae"
    assert description["format_version"] == 1
    assert description["aekit_version"] == __version__
    assert description["config"]["n_latents"] == 16
    shapes = description["parameters"]
    assert shapes["W_enc"] == [16, 8] and shapes["W_dec"] == [16, 8]
    assert shapes["b_enc"] == [16] and shapes["b_dec"] == [8]


def test_version_subprocess():
    result = subprocess.run([sys.executable, "-m", "aekit", "--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"aekit {__version__}"


def test_bad_lr_in_a_real_process(tmp_path, data):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "aekit", "train", "--data", str(data), "--out", str(out), "--lr", "-0.5", *QUICK],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("aekit: error: ")
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert "train.lr" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    assert not out.exists()


def test_demo_writes_its_outputs_and_refuses_a_foreign_directory(tmp_path):
    from aekit.cli import main as cli_main

    out = tmp_path / "demo"
    assert cli_main(["demo", "--world", "features", "--out", str(out), "--steps", "20", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mse", "fvu", "l0", "dead_fraction", "mcc", "mean_best_f1"} <= set(metrics)
    assert metrics["l0"] <= 5.0
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "run" / "model" / "model.safetensors").is_file()
    assert (out / "store" / "manifest.json").is_file()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert cli_main(["demo", "--out", str(foreign), "--steps", "20", "--quiet"]) == 2
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_world_train_lm_and_disentangle_commands(tmp_path, capsys):
    from aekit.cli import main as cli_main

    out = tmp_path / "toy"
    rc = cli_main(["world", "train-lm", "--out", str(out), "--steps", "3", "--n-layer", "1", "--d-model", "32",
                   "--n-head", "2", "--n-ctx", "32", "--eval-n", "0", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert cli_main(["world", "train-lm", "--out", str(out), "--steps", "3", "--quiet"]) == 2  # not fresh
    assert cli_main(["world", "train-lm", "--out", str(tmp_path / "t2"), "--d-model", "33", "--quiet"]) == 2
    capsys.readouterr()

    study = tmp_path / "study"
    rc = cli_main(["disentangle", "--models", "ae", "--seeds", "1", "--steps", "2", "--batch-size", "8",
                   "--n-train", "64", "--n-eval", "100", "--out", str(study), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert (study / "results.json").is_file() and (study / "table.md").is_file()
    assert "InfoM" in capsys.readouterr().out
    assert cli_main(["disentangle", "--models", "ae,nonsense", "--out", str(tmp_path / "s2"), "--quiet"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_language_demo_runs_the_whole_pipeline_on_the_bundled_model(tmp_path, capsys):
    from aekit.cli import main as cli_main

    out = tmp_path / "demo"
    rc = cli_main(["demo", "--out", str(out), "--steps", "40", "--documents", "200", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "CE loss recovered" in printed and "log p(topic|x)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reconstruction"]["l0"] == pytest.approx(16.0)
    assert 0.5 < metrics["spliced"]["ce_recovered_zero"] <= 1.0  # even a 40-step SAE keeps most of the loss
    concepts = metrics["concepts"]["concepts"]
    assert set(concepts) == {"topic_word", "sentiment", "formality", "tense", "entity", "category"}
    assert all(0 < row["probe_f1"] <= 1 and 0 < row["sae_best_f1"] <= 1 for row in concepts.values())
    assert concepts["entity"]["probe_f1"] > 0.9  # entity type is linearly readable from the bundled model
    page = (out / "report.html").read_text()
    assert page.count('class="feature"') == 48


def test_load_model_knows_every_registered_kind():
    from aekit.models import MODEL_KINDS

    assert {"sae", "ae", "betavae", "betatcvae", "vqvae", "qlae", "xfactors"} <= set(MODEL_KINDS)
