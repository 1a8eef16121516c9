"""`aekit embed`, `aekit diff` and `aekit correlations` end to end on the toy GPT-2's SAE: what each writes agrees
with the library functions, documents are shown as text again from their corpus, and every bad input is one line
and exit code 2 with nothing written."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aekit.analysis.embeddings import DocumentEmbeddings, diff_latents, npmi_matrix, sae_embeddings
from aekit.report.data_analysis import render_diff_html
from aekit.worlds.language.corpora import diff_corpora
from aekit.worlds.toy_lm import bundled_toy_lm_path

from .doc_sae import HOOK, toy_doc_sae
from .helpers import run_cli

torch.set_num_threads(1)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_DOCS = 120


def _png_ok(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(path).shape[0] > 200


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> dict:
    """Two corpora embedded with `aekit embed`: A by an SAE whose provenance names the LM and hook, B by one
    without provenance (so --lm and --hook are given)."""
    root = tmp_path_factory.mktemp("data_analysis")
    doc_sae = toy_doc_sae()
    plain = root / "sae"
    doc_sae.sae.save(plain)
    recorded = root / "sae-recorded"
    shutil.copytree(plain, recorded)
    config = json.loads((recorded / "config.json").read_text())
    config["provenance"].update(model=str(bundled_toy_lm_path()), hook=HOOK)
    (recorded / "config.json").write_text(json.dumps(config))
    pair = diff_corpora(doc_sae.world, N_DOCS, seed=0)
    docs_a, docs_b = [d.text for d in pair.a], [d.text for d in pair.b]
    # a blank line is not a document: ids count non-empty documents only
    (root / "a.txt").write_text("\n".join(docs_a[:5]) + "\n\n" + "\n".join(docs_a[5:]) + "\n")
    (root / "b.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs_b))
    embed_a = run_cli(["embed", str(recorded), "--text", str(root / "a.txt"), "--out", str(root / "ea"), "--quiet"])
    embed_b = run_cli(["embed", str(plain), "--text", str(root / "b.jsonl"), "--out", str(root / "eb"), "--lm",
                    str(bundled_toy_lm_path()), "--hook", HOOK, "--batch-size", "16", "--quiet"])
    return {"root": root, "sae": plain, "docs_a": docs_a, "docs_b": docs_b, "embed_a": embed_a, "embed_b": embed_b}


def test_embed_writes_the_embeddings_a_summary_and_a_histogram(flow):
    root = flow["root"]
    for (code, stdout, stderr), name in ((flow["embed_a"], "ea"), (flow["embed_b"], "eb")):
        assert (code, stderr) == (0, ""), stderr
        assert f"embedded {N_DOCS} documents with 256 latents at {HOOK} (max pooling)" in stdout
        assert sorted(p.name for p in (root / name).iterdir()) == ["embed.json", "embeddings.safetensors",
                                                                  "frequency.png"]
        _png_ok(root / name / "frequency.png")
    emb = DocumentEmbeddings.load(root / "ea" / "embeddings.safetensors")
    record = json.loads((root / "ea" / "embed.json").read_text())
    assert (record["n_documents"], record["n_latents"], record["hook"]) == (N_DOCS, 256, HOOK)
    assert record["lm"] == str(bundled_toy_lm_path())  # taken from the SAE's provenance
    assert record["mean_active_latents"] == pytest.approx(emb.matrix.nnz / N_DOCS)
    assert record["alive_latents"] == int((emb.firing_frequency() > 0).sum())
    assert emb.doc_ids == [str(i) for i in range(N_DOCS)] and emb.pooling == "max"
    doc_sae = toy_doc_sae()
    direct = sae_embeddings(doc_sae.sae, doc_sae.model, doc_sae.tokenizer, HOOK, flow["docs_a"], progress=False)
    np.testing.assert_array_equal(emb.matrix.toarray() > 0, direct.matrix.toarray() > 0)
    np.testing.assert_allclose(emb.matrix.toarray(), direct.matrix.toarray(), rtol=1e-5, atol=1e-5)


def test_diff_ranks_latents_shows_documents_and_labels_them(flow):
    root = flow["root"]
    code, stdout, stderr = run_cli(["diff", str(root / "ea"), str(root / "eb" / "embeddings.safetensors"), "--out",
                                 str(root / "diff"), "--top", "8", "--text-a", str(root / "a.txt"), "--text-b",
                                 str(root / "b.jsonl"), "--sae", str(flow["sae"]), "--lm",
                                 str(bundled_toy_lm_path()), "--quiet"])
    assert (code, stderr) == (0, ""), stderr
    assert "latents firing most differently in B (120 documents) than in A (120)" in stdout
    record = json.loads((root / "diff" / "diff.json").read_text())
    a = DocumentEmbeddings.load(root / "ea" / "embeddings.safetensors")
    b = DocumentEmbeddings.load(root / "eb" / "embeddings.safetensors")
    expected = diff_latents(a, b, top=8, n_examples=3)
    rows = record["latents"]
    assert [r["latent"] for r in rows] == [x.latent for x in expected]
    assert [(r["frequency_a"], r["frequency_b"]) for r in rows] == [(x.frequency_a, x.frequency_b) for x in expected]
    with open(root / "diff" / "diff.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["latent"]) for r in table] == [r["latent"] for r in rows]
    assert [float(r["absolute"]) for r in table] == pytest.approx([r["absolute"] for r in rows], abs=1e-6)
    for row in rows:
        assert row["examples_a"] == [flow["docs_a"][int(i)] for i in row["top_documents_a"]]
        assert row["examples_b"] == [flow["docs_b"][int(i)] for i in row["top_documents_b"]]
        assert isinstance(row["label"], str) and row["label"]  # top tokens: every shown latent fires there
    page = (root / "diff" / "diff.html").read_text()
    assert page.count("<tr><td class=n>") == 8 and rows[0]["examples_a"][0] in page


def test_correlations_match_the_library_and_write_a_heatmap(flow):
    root = flow["root"]
    code, stdout, stderr = run_cli(["correlations", str(root / "ea"), "--out", str(root / "corr"), "--top", "6",
                                 "--min-count", "5", "--text", str(root / "a.txt"), "--sae", str(flow["sae"]),
                                 "--lm", str(bundled_toy_lm_path()), "--quiet"])
    assert (code, stderr) == (0, ""), stderr
    assert "most correlated latent pairs (NPMI) over 120 documents" in stdout
    record = json.loads((root / "corr" / "correlations.json").read_text())
    fires = DocumentEmbeddings.load(root / "ea" / "embeddings.safetensors").fires().toarray()
    npmi = npmi_matrix(fires, min_count=5)
    finite = npmi[np.isfinite(npmi)]
    pairs = record["pairs"]
    assert len(pairs) == 6 and pairs[0]["npmi"] == pytest.approx(finite.max())
    for p in pairs:
        i, j = p["latent_i"], p["latent_j"]
        assert p["npmi"] == pytest.approx(npmi[i, j])
        assert (p["documents_i"], p["documents_j"], p["documents_both"]) == (
            fires[:, i].sum(), fires[:, j].sum(), (fires[:, i] & fires[:, j]).sum())
        assert p["label_i"] and p["label_j"]
    with open(root / "corr" / "correlations.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6
    _png_ok(root / "corr" / "npmi.png")


def test_diff_page_escapes_corpus_text():
    row = {"rank": 1, "latent": 3, "frequency_a": 0.1, "frequency_b": 0.4, "absolute": 0.3, "relative": 1.3,
           "label": "<b>", "top_documents_a": ["0"], "top_documents_b": ["1"],
           "examples_a": ["<script>alert(1)</script>"], "examples_b": ["x" * 1000]}
    record = {"a": {"source": "a", "n_documents": 10}, "b": {"source": "b", "n_documents": 10}, "covered_latents": 4,
              "labels": None, "latents": [row],
              "settings": {"by": "absolute", "min_coverage": 0.02, "threshold": 0.0, "epsilon": 1e-3}}
    page = render_diff_html(record)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;" in page
    assert "x" * 400 + " …" in page and "x" * 401 not in page


def _bad_inputs(root: Path, flow: dict) -> dict[str, tuple[list[str], str]]:
    lm = str(bundled_toy_lm_path())
    narrow = root / "narrow.safetensors"
    DocumentEmbeddings(sp.csr_matrix(np.eye(2, 3, dtype=np.float32)), ["0", "1"]).save(narrow)
    (root / "short.txt").write_text("one document\ntwo documents\n")
    (root / "taken").write_text("keep me")
    ea, sae = str(root / "ea"), str(flow["sae"])
    return {
        "embed: missing corpus": (["embed", sae, "--text", str(root / "nope.txt"), "--lm", lm, "--hook", HOOK],
                                  "nope.txt: corpus file not found"),
        "embed: no provenance": (["embed", sae, "--text", str(root / "a.txt")], "pass --lm and --hook"),
        "embed: bad pooling": (["embed", sae, "--text", str(root / "a.txt"), "--pooling", "median"],
                               "invalid choice: 'median'"),
        "embed: out is a file": (["embed", sae, "--text", str(root / "a.txt"), "--lm", lm, "--hook", HOOK, "--out",
                                  str(root / "taken")], "is an existing file, not a directory"),
        "diff: not embeddings": (["diff", ea, str(flow["sae"] / "model.safetensors")],
                                 "is not an aekit document-embeddings file"),
        "diff: latents differ": (["diff", ea, str(narrow)], "corpus A has 256 latents but corpus B has 3"),
        "diff: missing file": (["diff", ea, str(root / "missing")],
                               "missing: not found; give an `aekit embed` output directory"),
        "diff: sae without text": (["diff", ea, ea, "--sae", sae], "needs --text-a and/or --text-b"),
        "diff: wrong corpus": (["diff", ea, ea, "--text-a", str(root / "short.txt")], "holds only 2 documents"),
        "correlations: not embeddings": (["correlations", str(root / "a.txt")],
                                         "is not a safetensors file"),
        "correlations: min count": (["correlations", ea, "--min-count", "0"], "expected a positive integer"),
    }


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(flow):
    root = flow["root"]
    for name, (argv, message) in _bad_inputs(root, flow).items():
        out = root / f"out-{name.split(':')[0]}-{len(argv)}"
        if "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        code, stdout, stderr = run_cli([*argv, "--quiet"])
        assert code == 2, (name, stdout, stderr)
        assert stderr.startswith("aekit: error: ") and stderr.count("\n") == 1, (name, stderr)
        assert message in stderr, (name, stderr)
        assert not out.exists(), name
    assert (root / "taken").read_text() == "keep me"
