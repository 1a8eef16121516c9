"""`aekit select`: writes selected.csv, selected.json and selected.png for jaccard, bm25 and random on an embedded
corpus, and a mistake is one line, exit 2, with nothing written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp

from aekit.analysis.embeddings import DocumentEmbeddings
from aekit.cli import main

N_DOCS, N_LATENTS = 60, 24
TARGETS = set(range(0, N_DOCS, 6))  # 10 target documents
OTHER_WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """An `aekit embed`-like output (ids = corpus positions) whose targets share latents 0-3 and words."""
    rng = np.random.default_rng(0)
    dense = np.zeros((N_DOCS, N_LATENTS), dtype=np.float32)
    texts = []
    for i in range(N_DOCS):
        if i in TARGETS:
            dense[i, :4] = rng.uniform(1, 2, 4)
            texts.append(f"the war lasted from the year {i} to the next")
        else:
            dense[i, rng.choice(np.arange(4, N_LATENTS), 5, replace=False)] = rng.uniform(0.5, 2, 5)
            texts.append(" ".join(rng.choice(OTHER_WORDS, 8)))
    root = tmp_path_factory.mktemp("select")
    embed_dir = root / "embed-out"
    embed_dir.mkdir()
    DocumentEmbeddings(sp.csr_matrix(dense), [str(i) for i in range(N_DOCS)]).save(embed_dir / "embeddings.safetensors")
    (root / "corpus.txt").write_text("\n".join(texts) + "\n")
    return root


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["select", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _selected(out) -> list[dict[str, str]]:
    with open(out / "selected.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_jaccard_selects_the_documents_like_the_examples(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = _run(capsys, corpus / "embed-out", "--examples", "0", "6", "--budget", 8, "--out", out)
    assert code == 0, stderr
    assert "selected 8 of 58 candidates by jaccard" in stdout and "outputs:" in stdout
    rows = _selected(out)
    assert [r["rank"] for r in rows] == [str(i) for i in range(1, 9)] and set(rows[0]) == {"rank", "doc_id", "score"}
    assert {int(r["doc_id"]) for r in rows} == TARGETS - {0, 6}  # every other target, never the examples
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    record = json.loads((out / "selected.json").read_text())
    assert record["method"] == "jaccard" and record["examples"] == ["0", "6"] and record["n_candidates"] == 58
    assert record["selected"] == [r["doc_id"] for r in rows]
    assert record["scores"]["candidates"]["cut"] == pytest.approx(min(scores), rel=1e-5)
    assert (out / "selected.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bm25_reads_the_text_and_random_is_seeded(corpus, tmp_path, capsys):
    ids = tmp_path / "examples.txt"
    ids.write_text("# target examples\n0\n\n6\n")
    code, _, stderr = _run(capsys, corpus / "embed-out" / "embeddings.safetensors", "--examples-file", ids,
                           "--budget", 8, "--method", "bm25", "--text", corpus / "corpus.txt", "--out",
                           tmp_path / "bm25")
    assert code == 0, stderr
    rows = _selected(tmp_path / "bm25")
    assert {int(r["doc_id"]) for r in rows} == TARGETS - {0, 6}
    assert rows[0]["text"].startswith("the war lasted")
    assert json.loads((tmp_path / "bm25" / "selected.json").read_text())["bm25"]["k1"] == 1.5
    picks = []
    for name in ("r1", "r2"):
        assert _run(capsys, corpus / "embed-out", "--examples", "0", "--budget", 10, "--method", "random",
                    "--seed", 3, "--out", tmp_path / name)[0] == 0
        picks.append([r["doc_id"] for r in _selected(tmp_path / name)])
    assert picks[0] == picks[1] and "0" not in picks[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--examples", "0", "--budget", "5", "--method", "bm25"], "give the embedded corpus with --text"),
        (["--examples", "0", "999", "--budget", "5"], "'999' is not a document id"),
        (["--examples", "0", "--budget", "60"], "--budget 60 is more than the 59 candidates"),
        (["--examples", "0", "--budget", "0"], "expected a positive integer"),
        (["--examples", "0", "--budget", "5", "--method", "cosine"], "invalid choice"),
        (["--budget", "5"], "one of the arguments --examples --examples-file is required"),
        (["--examples", "0", "--examples-file", "x.txt", "--budget", "5"], "not allowed with"),
        (["--examples-file", "missing.txt", "--budget", "5"], "examples file not found"),
        (["--examples", "0", "0", "--budget", "5"], "given twice"),
    ],
)
def test_mistakes_are_one_line_and_write_nothing(corpus, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _run(capsys, corpus / "embed-out", *args, "--out", tmp_path / "out")
    assert code == 2 and stdout == ""
    assert stderr.startswith("aekit: error: ") and stderr.count("\n") == 1 and message in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_a_corpus_shorter_than_the_embeddings_or_not_embeddings_is_refused(corpus, tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("one document\n")
    code, _, stderr = _run(capsys, corpus / "embed-out", "--examples", "0", "--budget", 3, "--method", "bm25",
                           "--text", short, "--out", tmp_path / "out")
    assert code == 2 and "holds only 1 documents" in stderr and not (tmp_path / "out").exists()
    code, _, stderr = _run(capsys, corpus / "corpus.txt", "--examples", "0", "--budget", 3, "--out", tmp_path / "o")
    assert code == 2 and stderr.startswith("aekit: error: ") and not (tmp_path / "o").exists()
