"""The CLI error contract: every user mistake exits with code 2 and one line "aekit: error: ..." on stderr,
no traceback, and no output left behind (a failed fresh run's --out does not exist; inputs are unchanged).

All cases run in-process through `aekit.cli.main(argv)`; the fixtures (arrays, stores, a tiny trained model
and broken copies of it) are built once per module.
"""

from __future__ import annotations

import errno
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from aekit.cli import main
from aekit.commands import workflows
from aekit.data import write_store
from aekit.data.store import ActivationStoreWriter

ROWS, D = 256, 8
# a fresh run that, if no error stopped it, would finish in well under a second
TRAIN = ["train", "--out", "{out}", "--steps", "5", "--batch-size", "64", "--progress", "false",
         "--n-latents", "16", "--k", "2", "--checkpoint-every", "0"]


def _x(rows: int = ROWS, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, d)).astype(np.float32)


class _Malicious:
    """Unpickling this creates `path`: proof that a loader executed code from the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("inputs")
    f: dict[str, Path] = {"base": base}

    def save(name: str, array: np.ndarray) -> None:
        f[name.split(".")[0]] = base / name
        np.save(base / name, array)

    save("x.npy", _x())
    save("x5.npy", _x(d=5))
    nan = _x()
    nan[3, 4] = np.nan
    save("nan.npy", nan)
    inf = _x()
    inf[7, 1] = -np.inf
    save("inf.npy", inf)
    save("empty.npy", np.zeros((0, D), np.float32))
    save("oned.npy", np.arange(D, dtype=np.float32))
    f["csv"] = base / "x.csv"
    np.savetxt(f["csv"], _x(), delimiter=",")
    f["objects"] = base / "objects.npz"
    np.savez(f["objects"], activations=np.array([{"a": 1}, None], dtype=object))
    f["plain_dir"] = base / "plain_dir"
    f["plain_dir"].mkdir()
    (f["plain_dir"] / "readme.txt").write_text("not a store\n")

    # activation stores: 2 shards of 128 rows each, then broken in different ways
    x = torch.from_numpy(_x())
    for name in ("store_missing", "store_truncated", "store_checksum"):
        f[name] = base / name
        write_store(f[name], x, rows_per_shard=128)
    (f["store_missing"] / "shard_00001.safetensors").unlink()
    shard = f["store_truncated"] / "shard_00000.safetensors"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    shard = f["store_checksum"] / "shard_00000.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x01  # one bit of one float: still a valid safetensors file, same size
    shard.write_bytes(bytes(data))
    f["store_incomplete"] = base / "store_incomplete"
    writer = ActivationStoreWriter(f["store_incomplete"], D, rows_per_shard=128)
    writer.append(x)  # two full shards flushed, but never closed

    # config files
    f["bad_yaml"] = base / "bad.yaml"
    f["bad_yaml"].write_text("model:\n  k: [1, 2\ntrain: {steps: 5\n")
    f["typo_nested"] = base / "typo_nested.yaml"
    f["typo_nested"].write_text("train:\n  stpes: 5\n")
    f["typo_flat"] = base / "typo_flat.yaml"
    f["typo_flat"].write_text("stpes: 5\n")
    f["typo_section"] = base / "typo_section.yaml"
    f["typo_section"].write_text("modle:\n  k: 2\n")
    f["list_yaml"] = base / "list.yaml"
    f["list_yaml"].write_text("- steps\n- 5\n")
    f["data_not_path"] = base / "data_not_path.yaml"
    f["data_not_path"].write_text("data: 5\nout: somewhere\n")
    f["section_not_mapping"] = base / "section_not_mapping.yaml"
    f["section_not_mapping"].write_text("train: 5\n")

    # one tiny trained model, then broken copies of it
    f["run"] = base / "run"
    argv = [t.format(out=f["run"]) for t in TRAIN] + ["--data", str(f["x"])]
    assert main(argv) == 0
    f["model"] = f["run"] / "model"

    f["model_pickle"] = _copy_model(f["model"], base / "model_pickle")
    (f["model_pickle"] / "model.safetensors").write_bytes(pickle.dumps({"W_enc": torch.zeros(16, 8)}))

    f["model_version"] = _copy_model(f["model"], base / "model_version")
    meta = json.loads((f["model_version"] / "config.json").read_text())
    meta["format_version"] = 99
    (f["model_version"] / "config.json").write_text(json.dumps(meta))

    f["model_kind"] = _copy_model(f["model"], base / "model_kind")
    meta["format_version"], meta["kind"] = 1, "transcoder9000"
    (f["model_kind"] / "config.json").write_text(json.dumps(meta))

    f["model_shape"] = _copy_model(f["model"], base / "model_shape")
    tensors = load_file(f["model_shape"] / "model.safetensors")
    tensors["W_enc"] = torch.zeros(12, D)
    save_file(tensors, f["model_shape"] / "model.safetensors")

    f["model_noconfig"] = _copy_model(f["model"], base / "model_noconfig")
    (f["model_noconfig"] / "config.json").unlink()

    f["run_broken"] = base / "run_broken"
    f["run_broken"].mkdir()
    (f["run_broken"] / "run.json").write_text(json.dumps({"data": str(f["x"])}))
    return f


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under root, with a hash of each file's bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def _expect_usage_error(capsys, argv: list[str], *expected: str) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit code {code}; stderr: {err!r}"
    assert err.startswith("aekit: error: "), err
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line: {err!r}"
    assert "Traceback" not in out and "Traceback" not in err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    return err


# (id, argv with {placeholders} for fixture paths and {out}, substrings the message must contain)
CASES = [
    # --- model / training settings
    ("unknown-architecture", TRAIN + ["--data", "{x}", "--architecture", "banana"], ["model.architecture", "topk"]),
    ("k-above-n-latents", TRAIN + ["--data", "{x}", "--k", "17"], ["model.k", "n_latents=16"]),
    ("negative-lr", TRAIN + ["--data", "{x}", "--lr", "-1"], ["train.lr", "-1.0"]),
    ("negative-lr-exponent", TRAIN + ["--data", "{x}", "--lr=-1e-3"], ["train.lr", "-0.001"]),
    # argparse reads "-1e-3" after a space as a flag, not a number: still one line that names --lr
    ("negative-lr-exponent-spaced", TRAIN + ["--data", "{x}", "--lr", "-1e-3"], ["--lr", "expected one argument"]),
    ("nan-lr", TRAIN + ["--data", "{x}", "--lr", "nan"], ["train.lr"]),
    ("non-numeric-lr", TRAIN + ["--data", "{x}", "--lr", "fast"], ["train.lr", "expected float", "'fast'"]),
    ("zero-steps", TRAIN + ["--data", "{x}", "--steps", "0"], ["train.steps", "≥ 1"]),
    ("negative-steps", TRAIN + ["--data", "{x}", "--steps", "-3"], ["train.steps"]),
    ("zero-batch-size", TRAIN + ["--data", "{x}", "--batch-size", "0"], ["train.batch_size"]),
    ("non-integer-k", TRAIN + ["--data", "{x}", "--k", "2.5"], ["model.k", "expected int"]),
    ("non-bool-progress", TRAIN + ["--data", "{x}", "--progress", "maybe"], ["train.progress"]),
    ("unknown-decay", TRAIN + ["--data", "{x}", "--decay", "exponential"], ["train.decay", "cosine"]),
    ("d-in-contradicts-data", TRAIN + ["--data", "{x}", "--d-in", "5"], ["model.d_in", "8 features", "d_in=5"]),
    ("d-in-not-a-number", TRAIN + ["--data", "{x}", "--d-in", "abc"], ["model.d_in", "expected int"]),
    # --- data files
    ("nan-in-data", TRAIN + ["--data", "{nan}"], ["nan.npy", "non-finite", "row 3, column 4"]),
    ("inf-in-data", TRAIN + ["--data", "{inf}"], ["inf.npy", "non-finite", "row 7, column 1"]),
    ("empty-dataset", TRAIN + ["--data", "{empty}"], ["empty.npy", "empty"]),
    ("one-dimensional-array", TRAIN + ["--data", "{oned}"], ["oned.npy", "2-D"]),
    ("missing-data-file", TRAIN + ["--data", "{base}/nope.npy"], ["nope.npy", "not found"]),
    ("csv-extension", TRAIN + ["--data", "{csv}"], ["x.csv", "unsupported data format", ".npy"]),
    ("object-array", TRAIN + ["--data", "{objects}"], ["objects.npz"]),
    ("directory-not-a-store", TRAIN + ["--data", "{plain_dir}"], ["plain_dir", "manifest.json"]),
    # --- activation stores
    ("store-missing-shard", TRAIN + ["--data", "{store_missing}"], ["shard_00001.safetensors", "missing"]),
    ("store-truncated-shard", TRAIN + ["--data", "{store_truncated}"], ["shard_00000.safetensors", "re-create"]),
    ("store-checksum-mismatch", TRAIN + ["--data", "{store_checksum}"], ["shard_00000.safetensors", "checksum"]),
    ("store-incomplete", TRAIN + ["--data", "{store_incomplete}"], ["manifest.json", "never closed"]),
    ("eval-store-checksum-mismatch", ["eval", "{model}", "--data", "{store_checksum}"], ["checksum"]),
    # --- config files
    ("malformed-yaml", TRAIN + ["--data", "{x}", "--config", "{bad_yaml}"], ["bad.yaml", "not valid YAML"]),
    ("unknown-key-nested", TRAIN + ["--data", "{x}", "--config", "{typo_nested}"],
     ["train.stpes", "unknown setting", "did you mean 'steps'"]),
    ("unknown-key-flat", TRAIN + ["--data", "{x}", "--config", "{typo_flat}"],
     ["typo_flat.yaml", "'stpes'", "did you mean 'steps'"]),
    ("unknown-section", TRAIN + ["--data", "{x}", "--config", "{typo_section}"], ["'modle'", "did you mean 'model'"]),
    ("config-not-a-mapping", TRAIN + ["--data", "{x}", "--config", "{list_yaml}"], ["list.yaml", "mapping"]),
    ("config-section-not-mapping", TRAIN + ["--data", "{x}", "--config", "{section_not_mapping}"],
     ["section_not_mapping.yaml", "'train' must be a mapping"]),
    ("config-data-not-a-path", ["train", "--config", "{data_not_path}"], ["data_not_path.yaml", "'data'", "path"]),
    ("missing-config-file", TRAIN + ["--data", "{x}", "--config", "{base}/nope.yaml"], ["nope.yaml", "not found"]),
    # --- command line
    ("unknown-flag", TRAIN + ["--data", "{x}", "--bogus", "1"], ["--bogus"]),
    ("missing-data-flag", TRAIN, ["--data (an array file or activation store) or --lm/--hook/--text is required"]),
    ("no-command", [], ["no command given", "choose one of train, eval,", "aekit --help"]),
    ("no-world-command", ["world"],
     ["world: no command given", "train-lm, train-vit, train-clip, eval-lm", "aekit world --help"]),
    ("unknown-command", ["fly"], ["'fly'"]),
    ("eval-zero-max-rows", ["eval", "{model}", "--data", "{x}", "--max-rows", "0"], ["--max-rows", "'0'"]),
    ("out-exists-non-empty", TRAIN[:1] + ["--out", "{run}"] + TRAIN[3:] + ["--data", "{x}"],
     ["run", "already exists and is not empty", "--resume"]),
    ("resume-without-run", ["train", "--resume", "--out", "{out}"], ["run.json", "not found"]),
    ("resume-without-checkpoint", ["train", "--resume", "--out", "{run}"], ["no checkpoint"]),
    ("resume-with-flags", ["train", "--resume", "--out", "{run}", "--lr", "1"], ["--resume", "drop --config"]),
    ("resume-broken-run-json", ["train", "--resume", "--out", "{run_broken}"], ["run.json", "'train'"]),
    # --- saved models
    ("eval-wrong-input-dim", ["eval", "{model}", "--data", "{x5}"], ["x5.npy", "5 features", "expects 8"]),
    ("eval-pickle-weights", ["eval", "{model_pickle}", "--data", "{x}"], ["model.safetensors", "pickle"]),
    ("info-pickle-weights", ["info", "{model_pickle}"], ["model_pickle/model.safetensors", "pickle"]),
    ("info-unknown-format-version", ["info", "{model_version}"], ["config.json", "format_version 99"]),
    ("info-unknown-kind", ["info", "{model_kind}"], ["config.json", "transcoder9000"]),
    ("info-wrong-tensor-shape", ["info", "{model_shape}"], ["model.safetensors", "'W_enc'", "(12, 8)", "(16, 8)"]),
    ("eval-wrong-tensor-shape", ["eval", "{model_shape}", "--data", "{x}"], ["'W_enc'", "(12, 8)"]),
    ("info-missing-config-json", ["info", "{model_noconfig}"],
     ["model_noconfig", "config.json", "not a model directory"]),
    ("info-missing-model-dir", ["info", "{base}/no_model"], ["no_model", "not found"]),
    ("eval-missing-data", ["eval", "{model}", "--data", "{base}/nope.npy"], ["nope.npy", "not found"]),
    pytest.param("device-cuda-without-cuda", TRAIN + ["--data", "{x}", "--device", "cuda"], ["train.device", "cuda"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
]


def _case_id(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize(("name", "argv", "expected"), CASES, ids=[_case_id(c) for c in CASES])
def test_user_mistake_is_one_line_exit_2(files, tmp_path, capsys, name, argv, expected):
    out = tmp_path / "out"
    paths = {key: str(value) for key, value in files.items()} | {"out": str(out)}
    argv = [token.format(**paths) for token in argv]
    before = _snapshot(files["base"])

    _expect_usage_error(capsys, argv, *expected)

    assert not out.exists(), f"a failed command left {out} behind: {sorted(p.name for p in out.iterdir())}"
    assert _snapshot(files["base"]) == before, "a failed command changed its inputs"


def test_enough_cases():
    assert len(CASES) >= 20


def test_failed_run_into_existing_empty_dir_leaves_it_empty(files, tmp_path, capsys):
    """The shard is read after the run directory is set up: the failure must undo that set-up."""
    out = tmp_path / "out"
    out.mkdir()
    argv = [t.format(out=out) for t in TRAIN] + ["--data", str(files["store_checksum"])]
    _expect_usage_error(capsys, argv, "checksum")
    assert out.is_dir() and list(out.iterdir()) == []


def test_os_error_while_writing_outputs_removes_the_run(files, tmp_path, capsys, monkeypatch):
    """A full disk is reported like a user mistake, and the half-written run is removed."""

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "training.png")

    monkeypatch.setattr(workflows, "plot_training", no_space)
    out = tmp_path / "out"
    argv = [t.format(out=out) for t in TRAIN] + ["--data", str(files["x"])]
    _expect_usage_error(capsys, argv, "training.png", "No space left on device")
    assert not out.exists()


@pytest.mark.parametrize("command", ["info", "eval", "train-data"])
def test_malicious_pickle_is_never_executed(files, tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    payload = _Malicious(marker)
    if command == "train-data":
        data = tmp_path / "activations.pt"
        torch.save({"activations": payload}, data)
        argv = [t.format(out=tmp_path / "out") for t in TRAIN] + ["--data", str(data)]
        expected = ("activations.pt", "refused")
    else:
        model = _copy_model(files["model"], tmp_path / "model")
        (model / "model.safetensors").write_bytes(pickle.dumps(payload))
        argv = ["info", str(model)] if command == "info" else ["eval", str(model), "--data", str(files["x"])]
        expected = ("model.safetensors", "pickle")
    assert not marker.exists()

    _expect_usage_error(capsys, argv, *expected)

    assert not marker.exists(), "the pickle was executed"
    assert not (tmp_path / "out").exists()


def test_the_payload_really_is_malicious(tmp_path):
    """Guard for the test above: unpickling the payload does create the marker."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Malicious(marker))).close()
    assert marker.exists()


# --- messages that say exactly what is wrong ---------------------------------------------------------------


def _stderr_of(capsys, argv: list[str], code: int = 2) -> str:
    """Run the CLI; check the exit code and that stderr is one line; return that line."""
    got = main([str(token) for token in argv])
    out, err = capsys.readouterr()
    assert got == code, f"exit code {got}; stderr: {err!r}"
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line: {err!r}"
    return err


@pytest.mark.parametrize(
    ("name", "content", "reason", "expected"),
    [
        ("x.npy", b"hello\n", "it is a text file", "an array written by numpy.save"),
        ("x.npy", b"", "it is empty", "an array written by numpy.save"),
        ("x.npy", pickle.dumps(np.zeros((3, 3))), "it is a Python pickle, which aekit never loads",
         "an array written by numpy.save"),
        ("x.npy", b"\x00\x01\x02binary\xff\xfe", "its header is not recognised", "an array written by numpy.save"),
        ("x.npz", b"a,b\n1,2\n", "it is a text file", "arrays written by numpy.savez"),
        ("x.pt", b"hello\n", "it is a text file", "tensors written by torch.save"),
    ],
)
def test_file_that_is_not_what_its_extension_says(tmp_path, capsys, name, content, reason, expected):
    data = tmp_path / name
    data.write_bytes(content)
    out = tmp_path / "out"
    argv = [t.format(out=out) for t in TRAIN] + ["--data", data]

    err = _stderr_of(capsys, argv)

    suffix = data.suffix
    assert err == f"aekit: error: {data}: is not a {suffix} file ({reason}); expected {expected}\n"
    assert "allow_pickle" not in err and "pickle.load" not in err
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_object_array_never_suggests_unpickling(tmp_path, capsys, suffix):
    data = tmp_path / f"objects{suffix}"
    objects = np.array([[1.0, None]], dtype=object)
    if suffix == ".npy":
        np.save(data, objects, allow_pickle=True)
    else:
        np.savez(data, activations=objects)

    err = _stderr_of(capsys, [t.format(out=tmp_path / "out") for t in TRAIN] + ["--data", data])

    assert err == (f"aekit: error: {data}: holds Python objects (an object array), not numbers; aekit never "
                   "unpickles them; save a numeric 2-D array\n")


@pytest.mark.parametrize(
    "argv",
    [
        [t for t in TRAIN] + ["--data", "{x}"],
        ["cache", "--model", "{base}/no-such-model", "--hook", "blocks.0.hook_resid_post", "--text", "{base}/t.txt",
         "--out", "{out}"],
        ["demo", "--world", "features", "--out", "{out}"],
        ["disentangle", "--out", "{out}", "--steps", "1", "--seeds", "1", "--models", "ae"],
        ["world", "train-lm", "--out", "{out}"],
    ],
    ids=["train", "cache", "demo", "disentangle", "world-train-lm"],
)
def test_out_naming_an_existing_file(files, tmp_path, capsys, argv):
    out = tmp_path / "notes.txt"
    out.write_text("keep me\n")
    paths = {key: str(value) for key, value in files.items()} | {"out": str(out)}

    err = _stderr_of(capsys, [token.format(**paths) for token in argv])

    assert err == f"aekit: error: {out}: is an existing file, not a directory; choose another path for --out\n"
    assert out.read_text() == "keep me\n"


def _interrupt_at(monkeypatch, step: int) -> None:
    """Make training raise KeyboardInterrupt (as Ctrl-C does) when it is about to run `step`."""
    from aekit.train.trainer import Trainer

    original = Trainer.train_step

    def train_step(self, *args, **kwargs):
        if self.step == step:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", train_step)


def test_interrupt_names_the_run_directory_to_resume(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--data", files["x"], "--out", out, "--steps", "8", "--batch-size", "64", "--n-latents", "16",
            "--k", "2", "--checkpoint-every", "2", "--progress", "false"]
    _interrupt_at(monkeypatch, 5)

    err = _stderr_of(capsys, argv, code=130)

    assert err == f"aekit: interrupted; continue the run with `aekit train --resume --out {out}`\n"
    monkeypatch.undo()
    assert main(["train", "--resume", "--out", str(out)]) == 0, "the printed command does not continue the run"
    assert (out / "model" / "model.safetensors").is_file()


def test_interrupt_names_the_run_directory_from_the_config_file(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run from config"
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({"data": str(files["x"]), "out": str(out), "model": {"n_latents": 16, "k": 2},
                                  "train": {"steps": 8, "batch_size": 64, "checkpoint_every": 2, "progress": False}}))
    _interrupt_at(monkeypatch, 3)

    err = _stderr_of(capsys, ["train", "--config", config], code=130)

    assert err == f"aekit: interrupted; continue the run with `aekit train --resume --out '{out}'`\n"


def test_interrupt_before_the_first_checkpoint(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = [t.format(out=out) for t in TRAIN] + ["--data", files["x"]]
    _interrupt_at(monkeypatch, 2)

    err = _stderr_of(capsys, argv, code=130)

    assert err == f"aekit: interrupted before the first checkpoint of {out}; nothing to resume, start the run again\n"
    assert not out.exists()


def test_interrupt_outside_training(files, capsys, monkeypatch):
    def interrupted(model_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflows, "info", interrupted)
    assert _stderr_of(capsys, ["info", files["model"]], code=130) == "aekit: interrupted\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "no command given; choose one of train, eval, info, demo, cache, report, world, disentangle, circuits, "
             "embed, diff, correlations, cluster, retrieve, select, criticality, denoiser, map, cca, "
             "anomaly, vision-sae, vlsae, psvae, crate-mae, lvrae, video-vae, cktgen, ddmi, epg (see aekit --help)"),
        (["world"], "world: no command given; choose one of train-lm, train-vit, train-clip, eval-lm (see aekit world "
                    "--help)"),
        (["trian"], "unknown command 'trian' (did you mean 'train'?); choose one of train, eval, info, demo, cache, "
                    "report, world, disentangle, circuits, embed, diff, correlations, cluster, retrieve, select, "
                    "criticality, denoiser, map, cca, anomaly, vision-sae, vlsae, psvae, crate-mae, lvrae, video-vae, "
                    "cktgen, ddmi, epg (see aekit --help)"),
        (["world", "train"], "world: unknown command 'train' (did you mean 'train-lm'?); choose one of train-lm, "
                             "train-vit, train-clip, eval-lm (see aekit world --help)"),
        (["train", "--bogus", "1"], "train: unrecognized arguments: --bogus 1 (see aekit train --help)"),
        (["eval"], "eval: the following arguments are required: MODEL_DIR (see aekit eval --help)"),
        (["demo", "--steps", "0"],
         "demo: argument --steps: expected a positive integer, got '0' (see aekit demo --help)"),
    ],
    ids=["no-command", "no-world-command", "misspelt-command", "misspelt-world-command", "unknown-flag",
         "missing-positional", "bad-value"],
)
def test_command_line_mistakes_name_the_command_once(capsys, argv, expected):
    err = _stderr_of(capsys, argv)
    assert err == f"aekit: error: {expected}\n"
    assert "aekit: error: aekit" not in err


@pytest.mark.parametrize("command", ["info", "eval"])
def test_run_directory_given_for_a_model(files, capsys, command):
    run = files["run"]
    argv = [command, run] + (["--data", files["x"]] if command == "eval" else [])
    err = _stderr_of(capsys, argv)
    assert err == f"aekit: error: {run}: is a training run directory, not a model; give the model inside it: " \
                  f"{run / 'model'}\n"


def test_unfinished_run_given_for_a_model(files, tmp_path, capsys):
    run = tmp_path / "unfinished"
    shutil.copytree(files["run"], run)
    shutil.rmtree(run / "model")
    assert _stderr_of(capsys, ["info", run]) == (
        f"aekit: error: {run}: is a training run without a model or a checkpoint; train it again\n")
    (run / "checkpoints" / "step_00000003").mkdir(parents=True)
    assert _stderr_of(capsys, ["info", run]) == (
        f"aekit: error: {run}: is a training run that has not finished, so it holds no model yet; continue it with "
        f"`aekit train --resume --out {run}`\n")


def test_resume_where_there_is_no_run(tmp_path, capsys):
    out = tmp_path / "nothing-here"
    assert _stderr_of(capsys, ["train", "--resume", "--out", out]) == (
        f"aekit: error: {out / 'run.json'}: not found, so there is no run to resume in {out}; start a new run with "
        "--data and --out\n")
    assert not out.exists()


@pytest.mark.parametrize("which", ["model", "run"])
def test_autoencoder_given_for_a_language_model(files, capsys, which):
    sae = files[which]
    err = _stderr_of(capsys, ["world", "eval-lm", sae, "--n", "5"])
    assert err == (f"aekit: error: {sae}: is an aekit autoencoder, not a language model; give the Hugging Face "
                   "model directory or hub name of the language model\n")


def test_reader_closing_the_pipe_is_not_an_error(files, capsys, monkeypatch):
    """`aekit info DIR | head -1`: the closed pipe ends the command quietly, with the shell's SIGPIPE status."""

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    code = main(["info", str(files["model"])])
    monkeypatch.undo()
    assert code == 141
    assert capsys.readouterr().err == ""
