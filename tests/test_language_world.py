"""The toy language: determinism, tokenizer, exact topic posterior, task answers and corruptions, dependencies."""

import itertools
import random

import numpy as np
import pytest

from aekit.errors import ConfigError
from aekit.worlds.language import (
    BOS,
    CATEGORIES,
    CONCEPTS,
    TASK_FAMILIES,
    VOCAB,
    LanguageConfig,
    LanguageWorld,
    build_tokenizer,
    encode_words,
    mixed_documents,
    save_tokenizer,
    task_set,
)
from aekit.worlds.language.grammar import TEMPLATES
from aekit.worlds.language.tasks import split_of
from aekit.worlds.language.vocab import ADJECTIVES, COPULA, REGISTER, YEARS

transformers = pytest.importorskip("transformers")

MIXTURE = {"prose": 1.0, **{family: 1.0 for family in TASK_FAMILIES}}


@pytest.fixture(scope="module")
def world():
    return LanguageWorld()


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(directory, max_length=96)
    return transformers.AutoTokenizer.from_pretrained(str(directory))


def test_same_seed_same_documents_other_seed_other_documents(world):
    a, b, c = world.documents(50, seed=3), LanguageWorld().documents(50, seed=3), world.documents(50, seed=4)
    assert [d.tokens for d in a] == [d.tokens for d in b]
    assert all(np.array_equal(x.token_labels[k], y.token_labels[k]) for x, y in zip(a, b, strict=True)
               for k in CONCEPTS)
    assert sum(x.tokens != y.tokens for x, y in zip(a, c, strict=True)) >= 45
    # the emission tables depend on the world seed, so a different world seed changes which nouns are likely
    assert not np.allclose(LanguageWorld(LanguageConfig(seed=1)).noun_probs, world.noun_probs)
    mixed = [d.tokens for d in mixed_documents(world, 40, 0, MIXTURE)]
    assert mixed == [d.tokens for d in mixed_documents(LanguageWorld(), 40, 0, MIXTURE)]
    assert {d.kind for d in mixed_documents(world, 100, 0, MIXTURE)} == {"prose", *TASK_FAMILIES}


def test_tokenizer_round_trip_and_alignment(world, hf_tokenizer):
    docs = world.documents(30, seed=0) + mixed_documents(world, 60, 1, MIXTURE)
    ids = hf_tokenizer([d.text for d in docs]).input_ids
    for doc, row in zip(docs, ids, strict=True):
        assert row == encode_words(doc.tokens)  # BOS first, then one id per word: labels line up with positions
        assert hf_tokenizer.decode(row, skip_special_tokens=True) == doc.text
        assert all(len(labels) == len(doc.tokens) for labels in doc.token_labels.values())
    assert hf_tokenizer.unk_token_id not in {i for row in ids for i in row}
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=build_tokenizer())
    assert fast("the war lasted from the year 1732").input_ids == encode_words(
        [BOS, "the", "war", "lasted", "from", "the", "year", "17", "32"])
    assert hf_tokenizer('def load(x, y): """ :param x:').input_ids == encode_words(
        [BOS, "def", "load", "(", "x", ",", "y", ")", ":", '"""', ":", "param", "x", ":"])
    assert len(set(VOCAB)) == len(VOCAB) and hf_tokenizer.vocab_size == len(VOCAB)
    assert hf_tokenizer.bos_token == hf_tokenizer.eos_token == BOS and hf_tokenizer.pad_token == "<pad>"


@pytest.mark.parametrize("family", TASK_FAMILIES)
def test_every_answer_is_one_token(family, hf_tokenizer):
    tasks = task_set(family, 200, seed=0)
    vocab = hf_tokenizer.get_vocab()
    assert len(tasks) == len(tasks.answers) == len(tasks.corrupted_prompts) == len(tasks.metadata) == 200
    for prompt, answer, corrupted in zip(tasks.prompts, tasks.answers, tasks.corrupted_prompts, strict=True):
        assert hf_tokenizer(answer).input_ids == [vocab[BOS], vocab[answer]]
        # prompt + answer tokenises as prompt then exactly the answer token
        assert hf_tokenizer(f"{prompt} {answer}").input_ids == hf_tokenizer(prompt).input_ids + [vocab[answer]]
        assert len(hf_tokenizer(corrupted).input_ids) == len(hf_tokenizer(prompt).input_ids)
    assert task_set(family, 20, seed=5).prompts == task_set(family, 20, seed=5).prompts


def test_ioi_answers_and_three_name_corruptions():
    tasks = task_set("ioi", 300, seed=1)
    orders = set()
    for prompt, answer, corrupted, meta in zip(tasks.prompts, tasks.answers, tasks.corrupted_prompts,
                                               tasks.metadata, strict=True):
        words = prompt.split()
        assert answer == meta["io"] and words.count(meta["io"]) == 1 and words.count(meta["s"]) == 2
        first = [w for w in words if w in (meta["io"], meta["s"])][:2]
        assert first == ([meta["io"], meta["s"]] if meta["order"] == "ABBA" else [meta["s"], meta["io"]])
        names = [w for w in corrupted.split() if w in meta["corrupted_names"]]
        assert len(names) == 3 and len(set(names)) == 3 and not {meta["io"], meta["s"]} & set(names)
        assert meta["io"] not in corrupted.split() and meta["s"] not in corrupted.split()
        orders.add(meta["order"])
    assert orders == {"ABBA", "BABA"}


def test_greater_than_answers_are_later_years():
    tasks = task_set("greater_than", 300, seed=2)
    for prompt, answer, corrupted, meta in zip(tasks.prompts, tasks.answers, tasks.corrupted_prompts,
                                               tasks.metadata, strict=True):
        words = prompt.split()
        assert words[6] == words[-1] == str(meta["century"]) and words[7] == YEARS[meta["yy"]]
        assert answer in YEARS and int(answer) > meta["yy"] and answer in meta["valid_answers"]
        assert meta["valid_answers"] == [f"{y:02d}" for y in range(meta["yy"] + 1, 100)]
        assert corrupted.split()[7] == "01" and corrupted.split()[:7] == words[:7]


def test_docstring_and_induction_answers():
    doc = task_set("docstring", 100, seed=3)
    for prompt, answer, corrupted, meta in zip(doc.prompts, doc.answers, doc.corrupted_prompts, doc.metadata,
                                               strict=True):
        signature = prompt.split('"""')[0].split()
        documented = [w for a, w in itertools.pairwise(prompt.split()) if a == "param"]
        assert answer == meta["params"][2] and answer in signature and answer not in documented
        assert documented == meta["params"][:2] and answer not in corrupted.split()
    ind = task_set("induction", 100, seed=3)
    for prompt, answer, corrupted, meta in zip(ind.prompts, ind.answers, ind.corrupted_prompts, ind.metadata,
                                               strict=True):
        words, n, k = prompt.split(), meta["length"], meta["k"]
        assert words[:n] == meta["sequence"] and words[n:] == words[:k] and answer == words[k]
        assert answer not in corrupted.split()


@pytest.mark.parametrize("family", TASK_FAMILIES)
def test_test_split_keys_never_train(family):
    test = task_set(family, 100, seed=0, split="test")
    assert all(split_of(m["key"]) == "test" for m in test.metadata)
    train_keys = {m["key"] for m in task_set(family, 300, seed=0, split="train").metadata}
    assert all(split_of(k) == "train" for k in train_keys) and not train_keys & {m["key"] for m in test.metadata}
    with pytest.raises(ConfigError, match="split"):
        task_set(family, 1, split="holdout")


def _brute_force_posterior(world: LanguageWorld, tokens: list[str]) -> np.ndarray:
    """p(topic | prefix) by enumerating every (topic, formality, sentiment, tense), multiplying word probabilities."""
    nouns = {w: i for i, w in enumerate(world.nouns)}
    verbs = {form: (i, t) for i, pair in enumerate(world.verbs) for t, form in enumerate(pair)}
    out = np.zeros((len(tokens), len(world.topics)))
    for t in range(len(tokens)):
        for c, f, s, tense in itertools.product(range(len(world.topics)), (0, 1), (0, 1), (0, 1)):
            p = world.topic_prior[c] * (world.p_formal[c] if f else 1 - world.p_formal[c])
            p *= (world.p_positive[c] if s else 1 - world.p_positive[c]) * (
                world.config.p_past if tense else 1 - world.config.p_past)
            for word in tokens[1:t + 1]:
                if word in nouns:
                    p *= world.noun_probs[c, nouns[word]]
                elif word in verbs:
                    p *= world.verb_probs[c, verbs[word][0]] * (verbs[word][1] == tense)
                elif word in ADJECTIVES[0] + ADJECTIVES[1]:
                    p *= (word in ADJECTIVES[s]) / len(ADJECTIVES[s])
                elif word in REGISTER[0] + REGISTER[1]:
                    p *= (word in REGISTER[f]) / len(REGISTER[f])
                elif word in COPULA:
                    p *= COPULA.index(word) == tense
            out[t, c] += p
    return out / out.sum(1, keepdims=True)


def test_topic_posterior_is_exact_on_a_tiny_world():
    tiny = LanguageWorld(LanguageConfig(n_topics=3, nouns_per_topic=3, verbs_per_topic=2, n_shared_nouns=2,
                                        min_sentences=2, max_sentences=4, p_past=0.3, seed=5))
    docs = tiny.documents(12, seed=0)
    # documents with a second register word and a second adjective, which must not count as new evidence
    assert max((d.token_labels["formality"] >= 0).sum() for d in docs) >= 2
    assert max((d.token_labels["sentiment"] >= 0).sum() for d in docs) >= 2
    for doc in docs:
        log_post = tiny.topic_log_posterior(doc.tokens)
        assert log_post.shape == (len(doc.tokens), 3)
        assert np.allclose(np.exp(log_post).sum(1), 1.0, atol=1e-12)
        assert np.allclose(np.exp(log_post), _brute_force_posterior(tiny, doc.tokens), atol=1e-10)
        assert np.allclose(np.exp(log_post[0]), tiny.topic_prior)


def test_topic_posterior_is_calibrated_and_informative(world):
    """Where the posterior gives topic c probability ~p, the true topic is c a fraction ~p of the time.

    One random position per document keeps the samples independent, so the tolerance is 4 standard deviations
    of a sum of independent Bernoulli variables with the predicted probabilities.
    """
    docs = world.documents(3000, seed=11)
    rng = np.random.default_rng(0)
    probs, truth, final = [], [], []
    for doc in docs:
        post = np.exp(world.topic_log_posterior(doc.tokens))
        probs.append(post[rng.integers(len(doc))])
        truth.append(np.eye(len(world.topics))[doc.labels["topic"]])
        final.append(post[-1].argmax() == doc.labels["topic"])
    probs, truth = np.concatenate(probs), np.concatenate(truth)
    bins = np.minimum((probs * 5).astype(int), 4)
    for b in range(5):
        p, y = probs[bins == b], truth[bins == b]
        assert len(p) > 150
        assert abs(p.sum() - y.sum()) < 4 * np.sqrt((p * (1 - p)).sum()) + 1
    assert np.mean(final) > 0.95  # by the end of a document the words name the topic


def test_concept_labels_match_the_words(world):
    for doc in world.documents(100, seed=7):
        labels, words = doc.token_labels, np.array(doc.tokens)
        assert labels["topic"][0] == -1 and (labels["topic"][1:] == doc.labels["topic"]).all()
        adjective = labels["sentiment"] >= 0
        assert (labels["sentiment"][adjective] == doc.labels["sentiment"]).all()
        assert (labels["category"][adjective] == CATEGORIES.index("adjective")).all()
        register = labels["formality"] >= 0
        assert (labels["formality"][register] == doc.labels["formality"]).all()
        assert set(words[register]) <= set(REGISTER[doc.labels["formality"]])
        tensed = labels["tense"] >= 0
        assert (labels["tense"][tensed] == doc.labels["tense"]).all() and tensed.sum() >= 1
        names = labels["entity"] >= 0
        assert (labels["category"][names] == labels["entity"][names] + CATEGORIES.index("person")).all()
        own = labels["topic_word"] >= 0
        assert np.isin(labels["category"][own], [CATEGORIES.index("topic_noun"), CATEGORIES.index("verb")]).all()
        assert doc.labels["n_sentences"] == sum(w in (".", "!") for w in doc.tokens)


def test_stated_dependencies_hold_statistically(world):
    docs = world.documents(4000, seed=21)
    topic = np.array([d.labels["topic"] for d in docs])
    for concept, rates in (("formality", world.p_formal), ("sentiment", world.p_positive)):
        values = np.array([d.labels[concept] for d in docs])
        for c in range(len(world.topics)):
            n = (topic == c).sum()
            assert abs(values[topic == c].mean() - rates[c]) < 4 * np.sqrt(rates[c] * (1 - rates[c]) / n)
        # the dependency is real: finance (topic 3) is formal and negative far more often than cooking (topic 1)
        gap = values[topic == 3].mean() - values[topic == 1].mean()
        assert gap > 0.6 if concept == "formality" else gap < -0.45
    tense = np.array([d.labels["tense"] for d in docs])
    assert all(abs(tense[topic == c].mean() - 0.5) < 0.06 for c in range(5))  # tense is independent of topic
    flat = LanguageWorld(LanguageConfig(dependency_strength=0.0))
    assert np.allclose(flat.p_formal, 0.5) and np.allclose(flat.p_positive, 0.5)


def test_topic_words_follow_the_emission_table(world):
    """Nouns in documents of topic c occur at the rates noun_probs[c] says (chi-square-sized tolerance)."""
    docs = world.documents(3000, seed=5)
    index = {w: i for i, w in enumerate(world.nouns)}
    counts = np.zeros_like(world.noun_probs)
    for d in docs:
        for w, cat in zip(d.tokens, d.token_labels["category"], strict=True):
            if cat in (CATEGORIES.index("topic_noun"), CATEGORIES.index("shared_noun")):
                counts[d.labels["topic"], index[w]] += 1
    freq = counts / counts.sum(1, keepdims=True)
    assert np.abs(freq - world.noun_probs).max() < 0.02


def test_template_slots_and_config_errors():
    assert all(t[-1] in (".", "!") for t in TEMPLATES)
    with pytest.raises(ConfigError, match="language.n_topics"):
        LanguageConfig.from_dict({"n_topics": 9})
    with pytest.raises(ConfigError, match="task: unknown family"):
        task_set("sorting", 3)
    with pytest.raises(ConfigError, match="mixture"):
        mixed_documents(LanguageWorld(), 3, 0, {"prose": 0.0})
    rng = random.Random(0)
    assert LanguageWorld().sample_document(rng).kind == "prose"
