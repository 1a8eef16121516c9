"""`aekit circuits` end to end: on the bundled toy GPT-2 with ground truth and baselines, on a tiny random GPT-2
with a prompts file, every bad input as one line and exit code 2 with nothing written; and the circuit PNG."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from aekit.cli import main
from aekit.commands.circuits import select_edges, select_heads
from aekit.errors import ShapeError
from aekit.report import plot_circuit

from .tiny_lms import save_word_level_lm

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DOCS = ["the cat sat on the mat", "the dog sat on the rug", "a bird flew over the red house",
        "a fish swam under the blue boat"]
PAIRS = [  # (prompt, corrupted, answer, wrong): every corrupted prompt has its prompt's token length
    ("the cat sat on the", "the dog sat on the", "mat", "rug"),
    ("the dog sat on the", "the cat sat on the", "rug", "mat"),
    ("a bird flew over the red", "a fish swam under the blue", "house", "boat"),
    ("a fish swam under the blue", "a bird flew over the red", "boat", "house"),
]


def _run(argv: list[str]) -> tuple[int, str, str]:
    """Run `aekit circuits ...` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["circuits", "--quiet", *argv])
    return code, out.getvalue(), err.getvalue()


def _png_ok(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    return image


def _write_prompts(path: Path, pairs=PAIRS) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "corrupted": c, "answer": a, "wrong": w}) + "\n"
                            for p, c, a, w in pairs))
    return path


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> tuple[int, str, Path]:
    """One run on the bundled toy GPT-2 with ground truth and baselines: (exit code, stdout, out dir)."""
    out = tmp_path_factory.mktemp("toy") / "out"
    code, stdout, _ = _run(["--task", "ioi", "--n-prompts", "6", "--epochs", "60", "--ground-truth", "--baselines",
                            "--out", str(out)])
    return code, stdout, out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny random 2-layer × 4-head GPT-2 with a word-level tokenizer, a prompts file for it)."""
    root = tmp_path_factory.mktemp("tiny")
    model = save_word_level_lm(root / "gpt2", DOCS, n_embd=32, n_layer=2, n_head=4)
    return model, _write_prompts(root / "prompts.jsonl")


def test_toy_ioi_with_ground_truth_and_baselines(toy_run):
    code, stdout, out = toy_run
    assert code == 0
    result = json.loads((out / "circuits.json").read_text())
    nodes = np.array(result["node_scores"])
    assert nodes.shape == (4, 4) and (result["n_layers"], result["n_heads"]) == (4, 4)
    assert np.array(result["edge_scores"], dtype=float).shape == (4, 4, 4, 4)
    assert result["edge_scores"][2][0][1][0] is None  # a receiver before its sender is no edge: null, not NaN
    assert result["selected_heads"] == np.argwhere(nodes >= 1).tolist()
    truth = result["ground_truth"]
    assert [0, 1] in truth["heads"]  # L0H1's resample ablation removes ~0.9 of the IOI logit difference
    assert truth["effects"]["resample"][0][1] > 0.5 and truth["n_prompts"] == 200
    assert result["auc"]["acdc"] >= 0.9
    assert set(result["auc"]) >= {"discrete_codes", "acdc", "attribution_patching", "hisp", "discrete_codes_edges"}
    assert set(result["baselines"]) == {"acdc", "attribution_patching", "hisp"}
    assert np.array(result["baselines"]["hisp"]["scores"]).shape == (4, 4)
    for name in ("discrete_codes", "acdc", "attribution_patching", "hisp", "ground_truth"):
        assert result["seconds"][name] > 0
    assert result["task"] == {"name": "ioi", "source": "toy", "n_prompts": 6, "seed": 0}
    assert result["settings"]["epochs"] == 60 and Path(result["model"]).is_absolute()
    _png_ok(out / "circuit.png")
    assert "node scores (rows: layers, columns: heads)" in stdout and "ranking AUC vs ground truth" in stdout
    assert f"outputs: {out / 'circuits.json'}, {out / 'circuit.png'}" in stdout
    table = stdout.split("columns: heads):\n", 1)[1].splitlines()
    assert table[0].split() == ["H0", "H1", "H2", "H3"] and table[2].split()[0] == "L1"


def test_json_is_strict(toy_run):
    _, _, out = toy_run
    json.loads((out / "circuits.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))


def test_file_prompts_on_a_tiny_random_gpt2(tiny, tmp_path):
    model, prompts = tiny
    out = tmp_path / "out"
    code, stdout, stderr = _run(["--model", str(model), "--prompts", str(prompts), "--epochs", "20",
                                 "--n-latents", "16", "--baselines", "--size", "3", "--out", str(out)])
    assert code == 0, stderr
    result = json.loads((out / "circuits.json").read_text())
    assert np.array(result["node_scores"]).shape == (2, 4)
    assert np.array(result["edge_scores"], dtype=float).shape == (2, 4, 2, 4)
    assert len(result["selected_heads"]) == 3 and "ground_truth" not in result and "auc" not in result
    assert result["task"]["name"] == "prompts" and result["task"]["n_prompts"] == len(PAIRS)
    assert result["task"]["source"] == str(prompts.resolve())
    assert "3 heads (top 3)" in stdout
    _png_ok(out / "circuit.png")


def _bad_prompts(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.jsonl"
    if kind == "not-json":
        path.write_text("{this is not json\n")
    elif kind == "unequal":
        _write_prompts(path, [("the cat sat on the", "the dog sat on red the", "mat", "rug")])
    elif kind == "good":
        _write_prompts(path)
    return path


@pytest.mark.parametrize(("argv", "expected"), [
    (["--task", "nope"], "invalid choice"),
    (["--prompts", "{missing}"], "cannot read the prompts file"),
    (["--prompts", "{not-json}"], "not a JSON object"),
    (["--prompts", "{unequal}"], "equal token length"),
    (["--prompts", "{good}", "--ground-truth"], "--ground-truth needs a toy task"),
    (["--prompts", "{good}", "--n-prompts", "2"], "--n-prompts applies to --task only"),
    (["--n-prompts", "0"], "expected a positive integer"),
    (["--prompts", "{good}", "--size", "9"], "more than the model's 8 heads"),
    (["--prompts", "{good}", "--threshold", "nan"], "finite"),
], ids=["task", "missing", "not-json", "unequal", "truth-with-file", "n-with-file", "n-prompts", "size", "nan"])
def test_bad_input_is_one_line_and_writes_nothing(tiny, tmp_path, argv, expected):
    model, _ = tiny
    kinds = {"{missing}": "missing", "{not-json}": "not-json", "{unequal}": "unequal", "{good}": "good"}
    argv = [str(_bad_prompts(tmp_path, kinds[a])) if a in kinds else a for a in argv]
    out = tmp_path / "out"
    code, stdout, stderr = _run(["--model", str(model), "--epochs", "5", "--out", str(out), *argv])
    assert code == 2
    assert stderr.startswith("aekit: error: ") and stderr.count("\n") == 1 and expected in stderr, stderr
    assert stdout == "" and not out.exists()


def test_out_naming_a_file_is_refused(tiny, tmp_path):
    model, prompts = tiny
    out = tmp_path / "taken"
    out.write_text("mine")
    code, _, stderr = _run(["--model", str(model), "--prompts", str(prompts), "--out", str(out)])
    assert code == 2 and "not a directory" in stderr and out.read_text() == "mine"


def test_selection_rules():
    nodes = torch.tensor([[0.0, 2.0], [2.0, 1.0]])
    assert select_heads(nodes, 1.5, None).tolist() == [[False, True], [True, False]]
    assert select_heads(nodes, 99, 3).tolist() == [[False, True], [True, True]]  # --size ignores the threshold
    assert select_heads(nodes, 0, 1).tolist() == [[False, True], [False, False]]  # ties: the earlier head
    edges = torch.full((2, 2, 2, 2), math.nan)
    edges[0, 0, 1, 1], edges[0, 1, 1, 0], edges[0, 1, 1, 1] = 1.0, 3.0, 0.0
    assert select_edges(edges, 1) == [[0, 1, 1, 0], [0, 0, 1, 1]]


def test_plot_circuit_on_a_gpt2_small_shape(tmp_path):
    rng = np.random.default_rng(0)
    nodes = rng.poisson(1.0, (12, 12)).astype(float)
    edges = np.full((12, 12, 12, 12), np.nan)
    for i in range(11):
        edges[i, :, i + 1:, :] = rng.poisson(0.5, (12, 11 - i, 12))
    path = plot_circuit(torch.tensor(nodes), edges, tmp_path / "c.png", title="12 × 12", selected=nodes >= 2,
                        truth=rng.random((12, 12)) < 0.1)
    image = _png_ok(path)
    assert image.shape[1] > image.shape[0]  # twelve layers across
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left behind


def test_plot_circuit_checks_shapes(tmp_path):
    with pytest.raises(ShapeError, match="edge_scores"):
        plot_circuit(np.zeros((2, 3)), np.zeros((2, 3, 3, 2)), tmp_path / "c.png")
    with pytest.raises(ShapeError, match="truth"):
        plot_circuit(np.zeros((2, 3)), np.zeros((2, 3, 2, 3)), tmp_path / "c.png", truth=np.zeros((3, 2), bool))
    assert not (tmp_path / "c.png").exists()


def test_help_gives_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["circuits", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("default: the bundled toy GPT-2", "default: ioi", "default: circuits-out", "default: 500"):
        assert expected in text
