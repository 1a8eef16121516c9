"""`aekit cache` end to end on a tiny random GPT-2 with a word-level tokenizer, both saved to a local directory."""

import json
import os
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from aekit.cli import main  # noqa: E402
from aekit.data import ActivationStore, capture, token_rows  # noqa: E402

from .tiny_lms import save_word_level_lm  # noqa: E402

DOCS = [
    "the cat sat on the mat",
    "a dog ran",
    "the quick brown fox jumps over the lazy dog and the cat sat on a mat again",
    "mat",
    "dog cat fox",
]
MAX_LENGTH = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_word_level_lm(tmp_path_factory.mktemp("lm") / "tiny-gpt2", DOCS)


def _reference(model_dir, hook: str) -> torch.Tensor:
    """Each document alone (no padding), truncated like the cache, BOS dropped: the rows the store must hold."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    rows = []
    for doc in DOCS:
        ids = tokenizer([doc], return_tensors="pt", truncation=True, max_length=MAX_LENGTH)["input_ids"]
        acts = capture(model, ids, [hook])[hook]
        rows.append(token_rows(acts, ids, bos_token_id=tokenizer.bos_token_id).flatten(1))
    return torch.cat(rows)


def _expected_tokens() -> int:
    return sum(min(len(doc.split()), MAX_LENGTH - 1) for doc in DOCS)  # BOS takes one of the max_length slots


def _write_txt(path):
    path.write_text("\n".join(DOCS[:2]) + "\n\n   \n" + "\n".join(DOCS[2:]) + "\n")
    return path


def _write_jsonl(path):
    lines = [json.dumps({"text": doc, "id": i}) for i, doc in enumerate(DOCS)]
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n")
    return path


@pytest.mark.parametrize(("kind", "hook", "shape"), [
    ("txt", "blocks.1.hook_resid_post", [16]),
    ("jsonl", "blocks.0.attn.hook_z", [2, 8]),
    ("jsonl", "blocks.1.attn.hook_result", [2, 16]),
])
def test_cache_matches_direct_capture(model_dir, tmp_path, capsys, kind, hook, shape):
    corpus = (_write_txt if kind == "txt" else _write_jsonl)(tmp_path / f"corpus.{kind}")
    out = tmp_path / "store"
    rc = main(["cache", "--model", str(model_dir), "--hook", hook, "--text", str(corpus), "--out", str(out),
               "--batch-size", "2", "--max-length", str(MAX_LENGTH), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    store = ActivationStore(out)
    assert store.rows == _expected_tokens()
    assert store.d == shape[0] * (shape[1] if len(shape) > 1 else 1)
    torch.testing.assert_close(store.read_all(), _reference(model_dir, hook), atol=1e-5, rtol=1e-5)
    prov = store.provenance
    assert prov["model"] == str(model_dir) and prov["hook"] == hook and prov["hook_shape"] == shape
    assert prov["corpus"] == str(corpus.resolve()) and prov["max_length"] == MAX_LENGTH
    assert prov["dtype"] == "float32" and prov["aekit_version"] and prov["documents"] == len(DOCS)
    assert prov["tokens"] == store.rows
    assert f"store: {out}" in capsys.readouterr().out


def test_cache_max_tokens_and_half_precision(model_dir, tmp_path, capsys):
    corpus = _write_txt(tmp_path / "c.txt")
    out = tmp_path / "store"
    rc = main(["cache", "--model", str(model_dir), "--hook", "blocks.0.hook_resid_pre", "--text", str(corpus),
               "--out", str(out), "--max-tokens", "9", "--max-length", str(MAX_LENGTH), "--dtype", "bfloat16",
               "--device", "cpu", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    store = ActivationStore(out)
    assert store.rows == 9 and store.dtype == "bfloat16" and store.provenance["dtype"] == "bfloat16"


def _fails(argv, capsys) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aekit: error: "), err
    return lines[0]


def _argv(model, hook, text, out):
    return ["cache", "--model", str(model), "--hook", hook, "--text", str(text), "--out", str(out),
            "--max-length", str(MAX_LENGTH), "--device", "cpu", "--quiet"]


def test_cache_errors(model_dir, tmp_path, capsys):
    corpus = _write_txt(tmp_path / "c.txt")
    out = tmp_path / "store"

    msg = _fails(_argv(tmp_path / "no-such-model", "blocks.0.hook_resid_post", corpus, out), capsys)
    assert "locally" in msg and "hub" in msg
    msg = _fails(_argv(model_dir, "blocks.0.hook_nonsense", corpus, out), capsys)
    assert "unknown hook name" in msg
    msg = _fails(_argv(model_dir, "blocks.7.hook_resid_post", corpus, out), capsys)
    assert "layer 7" in msg
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n")
    msg = _fails(_argv(model_dir, "blocks.0.hook_resid_post", empty, out), capsys)
    assert "no documents" in msg
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("")
    assert "no documents" in _fails(_argv(model_dir, "blocks.0.hook_resid_post", empty_jsonl, out), capsys)
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "the cat"}\n{"body": "x"}\n')
    assert "bad.jsonl:2" in _fails(_argv(model_dir, "blocks.0.hook_resid_post", bad_jsonl, out), capsys)
    assert not out.exists()  # failed runs leave nothing behind

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    msg = _fails(_argv(model_dir, "blocks.0.hook_resid_post", corpus, taken), capsys)
    assert "not empty" in msg and (taken / "keep.txt").read_text() == "mine"

    empty_out = tmp_path / "empty-out"
    empty_out.mkdir()
    _fails(_argv(model_dir, "blocks.0.hook_resid_post", empty, empty_out), capsys)
    assert empty_out.is_dir() and not any(empty_out.iterdir())  # an existing empty --out stays empty


def test_cache_parquet_without_pyarrow(model_dir, tmp_path, capsys):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed")
    corpus = tmp_path / "c.parquet"
    corpus.write_bytes(b"PAR1 not really")
    msg = _fails(_argv(model_dir, "blocks.0.hook_resid_post", corpus, tmp_path / "store"), capsys)
    assert "pyarrow" in msg and "pip install pyarrow" in msg


def test_eval_splices_an_exact_sae_into_the_model_and_recovers_all_loss(model_dir, tmp_path, capsys):
    """An SAE that reconstructs exactly (x̂ = relu(x) − relu(−x)) must recover 100% of the CE loss."""
    from aekit import SAEConfig, SparseAutoencoder

    d = 16
    sae = SparseAutoencoder(SAEConfig(d_in=d, n_latents=2 * d, architecture="relu", normalize_input=False))
    with torch.no_grad():
        eye = torch.eye(d)
        sae.W_enc.copy_(torch.cat([eye, -eye]))
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    sae.save(tmp_path / "sae")
    corpus = _write_txt(tmp_path / "c.txt")
    argv = ["eval", str(tmp_path / "sae"), "--lm", str(model_dir), "--hook", "blocks.0.hook_resid_post",
            "--text", str(corpus), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["documents"] == len(DOCS)
    assert abs(out["ce_recovered_zero"] - 1.0) < 1e-3 and abs(out["delta_loss"]) < 1e-4
    assert main(["eval", str(tmp_path / "sae"), "--lm", str(model_dir), "--text", str(corpus)]) == 2
    assert "needs all of --lm, --hook and --text" in capsys.readouterr().err


def test_on_the_fly_source_yields_the_cached_rows_and_resumes_exactly(model_dir):
    from aekit.data.lm import load_lm
    from aekit.data.lm_source import LMActivationSource

    hook = "blocks.1.hook_resid_post"
    model, tokenizer = load_lm(str(model_dir), progress=False)
    source = LMActivationSource(model, tokenizer, hook, DOCS, batch_size=_expected_tokens(), seed=3,
                                docs_per_chunk=2, max_length=MAX_LENGTH)
    epoch = next(iter(source))  # one batch = exactly one epoch of tokens
    reference = _reference(model_dir, hook)
    key = lambda t: t[torch.argsort(t[:, 0])]  # noqa: E731 — same rows, any order
    torch.testing.assert_close(key(epoch), key(reference), atol=1e-5, rtol=1e-5)

    source = LMActivationSource(model, tokenizer, hook, DOCS, batch_size=5, seed=3, docs_per_chunk=2,
                                max_length=MAX_LENGTH)
    batches = iter(source)
    for _ in range(3):
        next(batches)
    cursor = source.state_dict()
    expected = [next(batches) for _ in range(4)]
    resumed = LMActivationSource(model, tokenizer, hook, DOCS, batch_size=5, seed=3, docs_per_chunk=2,
                                 max_length=MAX_LENGTH)
    resumed.load_state_dict(cursor)
    again = iter(resumed)
    for want in expected:
        assert torch.equal(next(again), want)


def test_train_on_the_fly_from_the_command_line(model_dir, tmp_path, capsys):
    corpus = _write_jsonl(tmp_path / "corpus.jsonl")
    run = tmp_path / "run"
    common = ["--lm", str(model_dir), "--hook", "blocks.1.hook_resid_post", "--text", str(corpus),
              "--max-length", str(MAX_LENGTH)]
    rc = main(["train", *common, "--out", str(run), "--steps", "12", "--batch-size", "8", "--n-latents", "32",
               "--k", "2", "--checkpoint-every", "6", "--init-samples", "16", "--progress", "false"])
    assert rc == 0, capsys.readouterr().err
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["data"]["hook"] == "blocks.1.hook_resid_post"
    provenance = json.loads((run / "model" / "config.json").read_text())["provenance"]
    assert provenance["hook"] == "blocks.1.hook_resid_post" and provenance["model"] == str(model_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["l0"] == pytest.approx(2.0)
    assert main(["train", *common, "--data", str(corpus), "--out", str(tmp_path / "r2")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["train", "--lm", str(model_dir), "--text", str(corpus), "--out", str(tmp_path / "r3")]) == 2
    assert "all of --lm, --hook and --text" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_unreachable_hub_fails_fast_with_a_clear_message(tmp_path, capsys, monkeypatch):
    import time

    import aekit.data.lm as lm

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(lm, "_hub_reachable", lambda timeout=3.0: False)
    corpus = _write_txt(tmp_path / "c.txt")
    start = time.perf_counter()
    msg = _fails(_argv("someone/tiny-model", "blocks.0.hook_resid_post", corpus, tmp_path / "store"), capsys)
    assert "hub (huggingface.co) cannot be reached" in msg
    assert time.perf_counter() - start < 30  # no minute of download retries
    assert not (tmp_path / "store").exists()


def test_run_json_records_local_paths_absolute_and_hub_names_as_given(model_dir, tmp_path, monkeypatch):
    from aekit.commands.training_data import record

    corpus = _write_jsonl(tmp_path / "corpus.jsonl")
    monkeypatch.chdir(tmp_path)
    spec = record({"lm": os.path.relpath(model_dir, tmp_path), "hook": "blocks.1.hook_resid_post",
                   "text": corpus.name})
    assert spec["lm"] == str(Path(model_dir).resolve()) and spec["text"] == str(corpus.resolve())
    hub = record({"lm": "gpt2", "hook": "blocks.1.hook_resid_post", "text": corpus.name})
    assert hub["lm"] == "gpt2"  # a hub name, not a local directory: kept for the loader to resolve
