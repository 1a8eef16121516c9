"""`aekit cluster` and `aekit retrieve` end to end on saved embeddings with two planted axes: the outputs, that
they recover the planted axis or property, and every bad input as one line, exit code 2 and nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from aekit.analysis.embeddings import DocumentEmbeddings

from .helpers import run_cli
from .test_embedding_clustering import planted

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N = 160


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(directory, embeddings dir, corpus file, axis A labels, axis B labels): ids are corpus positions "0".."159"
    as `aekit embed` writes them; document 7's text holds markup that the HTML page must escape."""
    root = tmp_path_factory.mktemp("cluster")
    emb, a, b = planted(N, seed=3)
    embed_dir = root / "embed-out"
    embed_dir.mkdir()
    DocumentEmbeddings(emb.matrix, [str(i) for i in range(N)], hook="blocks.0.hook_resid_post").save(
        embed_dir / "embeddings.safetensors")
    lines = [f"document {i} on side {a[i]} of A and value {b[i]} of B" for i in range(N)]
    lines[7] = "<script>alert('x')</script> & more"
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    return root, embed_dir, corpus, a, b


def _ids(labels: np.ndarray, value: int, n: int) -> list[str]:
    return [str(i) for i in np.flatnonzero(labels == value)[:n]]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_cluster_with_positive_and_negative_examples(world, tmp_path):
    _, embed_dir, _, a, b = world
    pos, neg = _ids(a, 0, 8), _ids(a, 1, 8)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["cluster", str(embed_dir), "--positive", ",".join(pos), "--negative", *neg,
                                 "--out", str(out)])
    assert code == 0, stderr
    assert "positive / negative" in stdout and "outputs:" in stdout
    rows = _csv(out / "clusters.csv")
    assert [r["doc_id"] for r in rows] == [str(i) for i in range(N)]
    clusters = np.array([int(r["cluster"]) for r in rows])
    assert adjusted_rand_score(a, clusters) > 0.8
    assert abs(adjusted_rand_score(b, clusters)) < 0.1
    assert {r["example"] for r in rows if r["doc_id"] in pos} == {"positive"}
    record = json.loads((out / "clusters.json").read_text())
    assert record["axis"] == {"values": ["positive", "negative"], "examples": {"positive": pos, "negative": neg}}
    assert record["settings"]["n_clusters"] == 2 and record["settings"]["n_latents"] == 10
    assert len(record["latents"]) == 10 and sum(c["size"] for c in record["clusters"]) == N
    assert {x["latent"] for x in record["latents"]} >= set(range(8))  # the planted A latents
    assert all(x["value"] in ("positive", "negative") for x in record["latents"])
    assert record["hook"] == "blocks.0.hook_resid_post"
    assert (out / "clusters.png").read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(out / "clusters.png").shape[0] > 300
    # The same seed gives the same clusters.
    again = tmp_path / "again"
    assert run_cli(["cluster", str(embed_dir / "embeddings.safetensors"), "--positive", *pos, "--negative", *neg,
                 "--out", str(again)])[0] == 0
    assert (again / "clusters.csv").read_bytes() == (out / "clusters.csv").read_bytes()


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_cluster_with_an_examples_file_of_four_values(world, tmp_path, suffix):
    _, embed_dir, _, _, b = world
    examples = {doc: f"v{v}" for v in range(4) for doc in _ids(b, v, 8)}
    path = tmp_path / f"examples{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(examples))
    else:
        path.write_text("doc_id,value\n" + "".join(f"{d},{v}\n" for d, v in examples.items()))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["cluster", str(embed_dir), "--examples-file", str(path), "--n-latents", "16",
                                 "--out", str(out)])
    assert code == 0, stderr
    record = json.loads((out / "clusters.json").read_text())
    assert record["axis"]["values"] == ["v0", "v1", "v2", "v3"] and record["settings"]["n_clusters"] == 4
    clusters = np.array([int(r["cluster"]) for r in _csv(out / "clusters.csv")])
    assert adjusted_rand_score(b, clusters) > 0.7


def test_retrieve_ranks_documents_with_the_property(world, tmp_path):
    _, embed_dir, corpus, a, _ = world
    query = _ids(a, 0, 8)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["retrieve", str(embed_dir), "--query", *query, "--top", "10", "--text", str(corpus),
                                 "--out", str(out)])
    assert code == 0, stderr
    assert "rank" in stdout and "on side 0" in stdout
    rows = _csv(out / "retrieved.csv")
    assert len(rows) == N - len(query) and not {r["doc_id"] for r in rows} & set(query)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    top = [int(r["doc_id"]) for r in rows[:20]]
    assert np.mean(a[top] == 0) >= 0.8
    record = json.loads((out / "retrieved.json").read_text())
    assert len(record["ranking"]) == 10 and record["ranking"][0]["text"].startswith("document")
    assert [q["doc_id"] for q in record["query"]] == query and len(record["latents"]) <= 20
    assert all(x["score"] > 0 for x in record["latents"])
    page = (out / "retrieved.html").read_text()
    assert "<!DOCTYPE html>" in page and "on side 0" in page


def test_retrieve_escapes_document_text(world, tmp_path):
    _, embed_dir, corpus, _, _ = world
    out = tmp_path / "out"
    # Document 7 is a query example, so its text is on the page.
    assert run_cli(["retrieve", str(embed_dir), "--query", "7", "8", "9", "--text", str(corpus),
                 "--out", str(out)])[0] == 0
    page = (out / "retrieved.html").read_text()
    assert "&lt;script&gt;" in page and "<script>" not in page


def _bad_cases(root: Path, embed_dir: Path, corpus: Path, a: np.ndarray) -> dict[str, tuple[list[str], str]]:
    pos, neg = _ids(a, 0, 3), _ids(a, 1, 3)
    (root / "one_value.json").write_text(json.dumps({d: "x" for d in pos}))
    (root / "broken.json").write_text("{not json")
    (root / "no_header.csv").write_text("1,a\n2,b\n")
    (root / "a_file").write_text("")
    e = str(embed_dir)
    return {
        "unknown id": (["cluster", e, "--positive", *pos, "--negative", neg[0], "9999"], "unknown id"),
        "missing embeddings": (["cluster", str(root / "nope.safetensors"), "--positive", *pos, "--negative", *neg],
                               "not found"),
        "too few examples": (["cluster", e, "--positive", pos[0], "--negative", *neg], "at least 2"),
        "one cluster": (["cluster", e, "--positive", *pos, "--negative", *neg, "--n-clusters", "1"],
                        "--n-clusters must be ≥ 2"),
        "more clusters than documents": (["cluster", e, "--positive", *pos, "--negative", *neg, "--n-clusters",
                                          str(N + 1)], "more than the"),
        "one side only": (["cluster", e, "--positive", *pos], "both sides"),
        "both example kinds": (["cluster", e, "--positive", *pos, "--negative", *neg, "--examples-file",
                                str(root / "one_value.json")], "not both"),
        "a document on both sides": (["cluster", e, "--positive", *pos, "--negative", pos[0], *neg],
                                     "both a positive and a negative"),
        "missing examples file": (["cluster", e, "--examples-file", str(root / "nope.json")],
                                  "examples file not found"),
        "broken examples file": (["cluster", e, "--examples-file", str(root / "broken.json")], "not valid JSON"),
        "examples of one value": (["cluster", e, "--examples-file", str(root / "one_value.json")], "at least 2"),
        "csv without header": (["cluster", e, "--examples-file", str(root / "no_header.csv")], "doc_id and value"),
        "coverage out of range": (["cluster", e, "--positive", *pos, "--negative", *neg, "--min-coverage", "1"],
                                  "--min-coverage"),
        "out is a file": (["cluster", e, "--positive", *pos, "--negative", *neg, "--out", str(root / "a_file")],
                          "existing file"),
        "retrieve unknown id": (["retrieve", e, "--query", pos[0], "abc"], "unknown id"),
        "retrieve one example": (["retrieve", e, "--query", pos[0]], "at least 2"),
        "retrieve same example twice": (["retrieve", e, "--query", pos[0], pos[0]], "twice"),
        "retrieve missing corpus": (["retrieve", e, "--query", *pos, "--text", str(root / "nope.txt")],
                                    "corpus file not found"),
        "retrieve without query": (["retrieve", e], "--query"),
        "retrieve missing embeddings": (["retrieve", str(root / "nowhere"), "--query", *pos], "not found"),
    }


BAD = ["unknown id", "missing embeddings", "too few examples", "one cluster", "more clusters than documents",
       "one side only", "both example kinds", "a document on both sides", "missing examples file",
       "broken examples file", "examples of one value", "csv without header", "coverage out of range",
       "out is a file", "retrieve unknown id", "retrieve one example", "retrieve same example twice",
       "retrieve missing corpus", "retrieve without query", "retrieve missing embeddings"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_written(world, tmp_path, case):
    root, embed_dir, corpus, a, _ = world
    argv, expected = _bad_cases(root, embed_dir, corpus, a)[case]
    out = tmp_path / "out"
    if "--out" not in argv:
        argv = [*argv, "--out", str(out)]
    code, stdout, stderr = run_cli(argv)
    assert code == 2
    assert stderr.startswith("aekit: error: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr, stderr
    assert not out.exists()
    assert (root / "a_file").read_text() == ""
