"""The HTML feature report: features with known behaviour, escaping, and a real headless Chromium."""

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from aekit.analysis.features import choose_features, collect_token_codes, feature_contexts  # noqa: E402
from aekit.cli import main  # noqa: E402
from aekit.data.lm import load_lm  # noqa: E402
from aekit.models.sae import SAEConfig, SparseAutoencoder  # noqa: E402
from aekit.report.feature_report import build_report  # noqa: E402
from aekit.report.html import render_report  # noqa: E402

from .tiny_lms import save_word_level_lm  # noqa: E402

DOCS = [
    "the cat sat on the mat",
    "a dog ran to the cat",
    "my cat and your dog met a fox",
    "<script>document.title='pwned'</script> fox & cat",
    "the fox jumps over the lazy dog",
] * 4
WORDS = ["cat", "dog", "fox"]  # feature i fires exactly on WORDS[i]
HOOK = "blocks.0.hook_resid_pre"


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    path = save_word_level_lm(tmp_path_factory.mktemp("lm") / "word-gpt2", DOCS, n_embd=64)
    model = transformers.GPT2LMHeadModel.from_pretrained(path)
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()  # resid_pre of layer 0 is then exactly the token embedding
    model.save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def word_sae(lm_dir, tmp_path_factory):
    """ReLU SAE whose first features detect one word each (pre-activation 0.5 on it, ≤ 0 elsewhere)."""
    model, tokenizer = load_lm(str(lm_dir), progress=False)
    wte = model.transformer.wte.weight.detach()
    d = wte.shape[1]
    sae = SparseAutoencoder(SAEConfig(d_in=d, n_latents=8, architecture="relu", normalize_input=False), seed=0)
    with torch.no_grad():
        sae.b_dec.zero_()
        sae.b_enc.fill_(-10.0)  # features beyond the word detectors never fire
        for i, word in enumerate(WORDS):
            e = wte[tokenizer.convert_tokens_to_ids(word)]
            sae.W_enc[i] = e / e.dot(e)
            sae.W_dec[i] = e / e.norm()
            sae.b_enc[i] = -0.5
    sae.provenance.update({"model": str(lm_dir), "hook": HOOK})
    path = tmp_path_factory.mktemp("sae") / "word-sae"
    sae.eval().save(path)
    return path


def _word_counts(word: str) -> int:
    return sum(doc.split().count(word) for doc in DOCS)


def test_codes_and_contexts_match_the_known_features(lm_dir, word_sae):
    model, tokenizer = load_lm(str(lm_dir), progress=False)
    sae = SparseAutoencoder.load(word_sae)
    codes = collect_token_codes(sae, model, tokenizer, HOOK, DOCS, batch_size=3, progress=False)
    n_tokens = sum(len(doc.split()) for doc in DOCS[:3] + DOCS[4:5]) * 4  # BOS excluded
    n_tokens += 4 * len(tokenizer(DOCS[3])["input_ids"][1:])
    assert codes.n_tokens == n_tokens
    for i, word in enumerate(WORDS):
        rows, values = codes.activations(i)
        expected = _word_counts(word)  # every occurrence, the ones after the '<script>' text included
        assert len(rows) == expected
        np.testing.assert_allclose(values, 0.5, atol=1e-4)
        assert codes.density()[i] == pytest.approx(expected / n_tokens)
        for context in feature_contexts(codes, i, n=5):
            lit = [text for text, value in context.pieces if value > 0]
            assert lit and set(lit) == {word}
    assert codes.density()[3:].sum() == 0
    assert choose_features(codes, 2) == [0, 2] and sorted(choose_features(codes, 10)) == [0, 1, 2]


def test_report_html_escapes_text_and_promotes_the_words(lm_dir, word_sae):
    model, tokenizer = load_lm(str(lm_dir), progress=False)
    sae = SparseAutoencoder.load(word_sae)
    data = build_report(sae, model, tokenizer, HOOK, DOCS, features=[0, 1, 2], progress=False)
    for card, word in zip(data.cards, WORDS, strict=True):
        assert card.promoted[0][0] == word  # the unembedding is tied to the embedding the feature reads
    page = render_report(data)

    class Scripts(HTMLParser):
        count = 0

        def handle_starttag(self, tag, attrs):
            self.count += tag == "script"

    parser = Scripts()
    parser.feed(page)
    assert parser.count == 1  # only the report's own sorting script
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page


def test_cli_report_defaults_to_the_recorded_model_and_hook(lm_dir, word_sae, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(DOCS) + "\n")
    out = tmp_path / "report.html"
    assert main(["report", str(word_sae), "--text", str(corpus), "--out", str(out), "--quiet"]) == 0
    assert "alive features:" in capsys.readouterr().out
    page = out.read_text()
    assert all(f'id="f{i}"' in page for i in range(3)) and 'id="f3"' not in page
    assert main(["report", str(word_sae), "--text", str(corpus), "--out", str(tmp_path / "r.txt")]) == 2
    assert main(["report", str(word_sae), "--text", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    bare = SparseAutoencoder(SAEConfig(d_in=64, n_latents=8, architecture="relu"))
    bare.save(tmp_path / "bare")
    assert main(["report", str(tmp_path / "bare"), "--text", str(corpus), "--out", str(tmp_path / "b.html")]) == 2
    assert "--lm and --hook" in capsys.readouterr().err
    assert not (tmp_path / "b.html").exists()


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium + chromium-driver not installed "
                    "(`make test` installs them)")
def test_report_in_headless_chromium(lm_dir, word_sae, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": d}) for d in DOCS) + "\n")
    out = tmp_path / "report.html"
    assert main(["report", str(word_sae), "--text", str(corpus), "--out", str(out), "--quiet"]) == 0

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(Path(out).resolve().as_uri())
        assert driver.title == f"Feature report — {HOOK}"  # the corpus's script did not run
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        assert driver.execute_script("return document.scripts.length") == 1
        assert "<script>document.title='pwned'</script> fox & cat" in driver.find_element(By.TAG_NAME, "body").text
        for i, word in enumerate(WORDS):
            section = driver.find_element(By.ID, f"f{i}")
            assert section.find_element(By.TAG_NAME, "h2").text == f"Feature {i}"
            lit = {span.text for span in section.find_elements(By.CSS_SELECTOR, ".ctx .tok")}
            assert lit == {word}
            assert section.find_element(By.CSS_SELECTOR, "svg.hist")
        # sorting the index by density, both ways
        header = driver.find_element(By.CSS_SELECTOR, 'th[data-sort="1"]')
        column = ('return Array.from(document.querySelectorAll("#index-body tr"))'
                  '.map(r => Number(r.cells[1].dataset.value))')
        header.click()
        values = driver.execute_script(column)
        assert values == sorted(values, reverse=True) and values[0] > 0
        header.click()
        values = driver.execute_script(column)
        assert values == sorted(values)
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()


def test_hook_z_report_shows_head_attribution(lm_dir):
    from aekit.analysis.attention import head_attribution

    model, tokenizer = load_lm(str(lm_dir), progress=False)
    sae = SparseAutoencoder(SAEConfig(d_in=64, n_latents=16, architecture="topk", k=3), seed=0).eval()
    with torch.no_grad():  # feature 0 writes only into head 1's block
        sae.W_dec[0, :32] = 0
    data = build_report(sae, model, tokenizer, "blocks.1.attn.hook_z", DOCS, n_features=6, progress=False)
    assert len(data.cards) == 6
    shares = head_attribution(sae, 2)
    for card in data.cards:
        assert card.heads == pytest.approx(shares[card.index].tolist()) and sum(card.heads) == pytest.approx(1)
    assert head_attribution(sae, 2)[0].tolist() == [0.0, 1.0]
    page = render_report(data)
    assert page.count("head attribution (decoder norm share)") == 6
