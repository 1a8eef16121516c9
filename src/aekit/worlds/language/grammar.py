"""Prose documents of the toy language, generated from latent discrete concepts whose values are recorded.

Generative story of one prose document (every choice seeded, so the same seed gives the same documents):

1. topic c ~ uniform over the `n_topics` topics;
2. formality f ~ Bernoulli(p_formal(c)) and sentiment s ~ Bernoulli(p_positive(c)): both DEPEND on the topic
   (the stated rates are in `vocab.TOPICS`; `dependency_strength` shrinks them towards 1/2, 0 = independent);
   tense ~ Bernoulli(p_past), independent of everything else;
3. 3–6 sentences, each from a template chosen uniformly (independently of every latent); a template's slots are
   filled with topic nouns and verbs drawn from p(word | c), adjectives of sentiment s, register words of
   formality f, the copula and verbs in tense t, and person/place/org names drawn uniformly (entities do not
   depend on the topic).

Because the template choice carries no information and the concept pools are disjoint, p(c | words so far) is
an exact Bayesian update computed in closed form by `LanguageWorld.topic_log_posterior`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from ...config_base import ConfigBase
from ...seeding import derive_seed
from .vocab import ADJECTIVES, BOS, COPULA, ENTITIES, ENTITY_TYPES, REGISTER, SHARED_NOUNS, TOPICS

__all__ = ["CATEGORIES", "CONCEPTS", "TEMPLATES", "Document", "LanguageConfig", "LanguageWorld"]

# Sentence templates: literal words, or {SLOT} filled by the generator. No template depends on a latent.
TEMPLATES: tuple[tuple[str, ...], ...] = tuple(t.split() for t in (
    "the {ADJ} {NOUN} {VERB} the {NOUN} .",
    "{PERSON} {VERB} the {NOUN} in {PLACE} .",
    "{REG} , the {NOUN} {VERB} a {ADJ} {NOUN} .",
    "{PERSON} from {ORG} {VERB} the {NOUN} .",
    "it {COP} a {ADJ} {NOUN} !",
    "{REG} , {PERSON} and {PERSON} {VERB} the {NOUN} near {PLACE} .",
    "the {NOUN} of {ORG} {COP} {ADJ} .",
    "{PERSON} {VERB} a {NOUN} with the {NOUN} .",
    "{REG} the {NOUN} at {ORG} {VERB} the {NOUN} .",
))
# Word categories (the per-token "category" label); a token's category is a function of the word alone.
CATEGORIES = ("special", "topic_noun", "shared_noun", "verb", "adjective", "person", "place", "org", "register",
              "copula", "function", "task")
# Per-token concept labels every document carries (-1 where the concept does not apply to the token).
CONCEPTS = ("topic", "topic_word", "sentiment", "formality", "tense", "entity", "category")


@dataclass
class LanguageConfig(ConfigBase):
    section = "language"

    n_topics: int = 5  # topics used, the first n of vocab.TOPICS
    nouns_per_topic: int = 12
    verbs_per_topic: int = 6
    n_shared_nouns: int = 10
    shared_mass: float = 0.3  # P(a noun slot draws a shared noun | topic); the weights differ per topic
    leak: float = 0.2  # P(a noun or verb slot draws a word of another topic's pool)
    own_concentration: float = 2.0  # Dirichlet concentration of the word weights within a topic's own pool
    dependency_strength: float = 1.0  # 1 = the stated topic dependence of formality and sentiment, 0 = none
    p_past: float = 0.5
    min_sentences: int = 3
    max_sentences: int = 6
    seed: int = 0  # seeds the word-emission tables (documents(n, seed) has its own seed)

    def validate(self) -> None:
        self._require(1 <= self.n_topics <= len(TOPICS), "n_topics", f"must be in 1..{len(TOPICS)}")
        self._require(1 <= self.nouns_per_topic <= len(TOPICS[0].nouns), "nouns_per_topic",
                      f"must be in 1..{len(TOPICS[0].nouns)}")
        self._require(1 <= self.verbs_per_topic <= len(TOPICS[0].verbs), "verbs_per_topic",
                      f"must be in 1..{len(TOPICS[0].verbs)}")
        self._require(0 <= self.n_shared_nouns <= len(SHARED_NOUNS), "n_shared_nouns",
                      f"must be in 0..{len(SHARED_NOUNS)}")
        self._require(0 <= self.shared_mass < 1 and (self.n_shared_nouns > 0 or self.shared_mass == 0),
                      "shared_mass", "must be in [0, 1), and 0 when n_shared_nouns is 0")
        self._require(0 <= self.leak < 1 - self.shared_mass, "leak", "must be ≥ 0 and below 1 - shared_mass")
        self._require(self.own_concentration > 0, "own_concentration", "must be > 0")
        self._require(0 <= self.dependency_strength <= 1, "dependency_strength", "must be in [0, 1]")
        self._require(0 <= self.p_past <= 1, "p_past", "must be in [0, 1]")
        self._require(1 <= self.min_sentences <= self.max_sentences, "min_sentences",
                      "must be ≥ 1 and ≤ max_sentences")


@dataclass
class Document:
    """One document: its words (the first is the BOS token the tokenizer adds), per-token and document labels.

    `tokens[i]` is exactly the i-th id the bundled tokenizer gives for `text`, so every label array and the
    topic posterior line up with model positions. `kind` is "prose" or the task family of a task document.
    """

    kind: str
    tokens: list[str]
    token_labels: dict[str, np.ndarray]
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The document as text: its words after BOS joined by single spaces (this round-trips exactly)."""
        return " ".join(self.tokens[1:])

    def __len__(self) -> int:
        return len(self.tokens)


def unlabelled_document(kind: str, words: list[str], entity_of: dict[str, int] | None = None) -> Document:
    """A task document: BOS + `words`, every concept label -1 except category ('task') and entity of names."""
    tokens = [BOS, *words]
    labels = {name: np.full(len(tokens), -1, dtype=np.int8) for name in CONCEPTS}
    labels["category"][1:] = CATEGORIES.index("task")
    labels["category"][0] = CATEGORIES.index("special")
    for i, word in enumerate(tokens):
        if entity_of and word in entity_of:
            labels["entity"][i] = entity_of[word]
    return Document(kind, tokens, labels)


class LanguageWorld:
    """The prose generator and its exact topic posterior; `config.seed` fixes the word-emission tables."""

    def __init__(self, config: LanguageConfig | None = None):
        self.config = config or LanguageConfig()
        self.config.validate()
        cfg = self.config
        self.topics = TOPICS[: cfg.n_topics]
        self.topic_prior = np.full(cfg.n_topics, 1.0 / cfg.n_topics)
        strength = cfg.dependency_strength
        self.p_formal = np.array([0.5 + strength * (t.p_formal - 0.5) for t in self.topics])
        self.p_positive = np.array([0.5 + strength * (t.p_positive - 0.5) for t in self.topics])
        self.own_nouns = [t.nouns[: cfg.nouns_per_topic] for t in self.topics]
        self.nouns = tuple(w for pool in self.own_nouns for w in pool) + SHARED_NOUNS[: cfg.n_shared_nouns]
        self.verbs = tuple(v for t in self.topics for v in t.verbs[: cfg.verbs_per_topic])  # (present, past)
        rng = np.random.default_rng(derive_seed("language.tables", cfg.seed))
        self.noun_probs = self._emission_table(rng, [len(p) for p in self.own_nouns], cfg.n_shared_nouns)
        self.verb_probs = self._emission_table(rng, [cfg.verbs_per_topic] * cfg.n_topics, 0)
        self._noun_index = {w: i for i, w in enumerate(self.nouns)}
        self._verb_index = {form: (i, tense) for i, pair in enumerate(self.verbs) for tense, form in enumerate(pair)}
        self._word_topic = {w: c for c, pool in enumerate(self.own_nouns) for w in pool}
        self._word_topic.update({form: c for c, t in enumerate(self.topics)
                                 for pair in t.verbs[: cfg.verbs_per_topic] for form in pair})
        self._adjective = {w: s for s, pool in ADJECTIVES.items() for w in pool}
        self._register = {w: f for f, pool in REGISTER.items() for w in pool}
        self._entity = {w: ENTITY_TYPES.index(kind) for kind, pool in ENTITIES.items() for w in pool}
        self._cum = {"noun": np.cumsum(self.noun_probs, axis=1).tolist(),
                     "verb": np.cumsum(self.verb_probs, axis=1).tolist()}

    def _emission_table(self, rng: np.random.Generator, pool_sizes: list[int], n_shared: int) -> np.ndarray:
        """p(word | topic) over [own pools of every topic..., shared words]: own pool mass 1 - leak - shared."""
        cfg = self.config
        n_topics, n_own = len(pool_sizes), sum(pool_sizes)
        shared_mass = cfg.shared_mass if n_shared else 0.0
        leak = cfg.leak if n_topics > 1 else 0.0
        table = np.zeros((n_topics, n_own + n_shared))
        starts = np.concatenate([[0], np.cumsum(pool_sizes)])
        for c in range(n_topics):
            own = slice(starts[c], starts[c + 1])
            table[c, own] = (1 - leak - shared_mass) * rng.dirichlet(np.full(pool_sizes[c], cfg.own_concentration))
            others = np.ones(n_own, dtype=bool)
            others[own] = False
            if others.any():
                table[c, :n_own][others] = leak / others.sum()
            if n_shared:
                table[c, n_own:] = shared_mass * rng.dirichlet(np.ones(n_shared))
        return table

    # ---- generation -------------------------------------------------------------------------------------

    def documents(self, n: int, seed: int = 0) -> list[Document]:
        """`n` prose documents; the same (config, seed) always gives the same documents."""
        rng = random.Random(derive_seed("language.documents", self.config.seed, seed))
        return [self.sample_document(rng) for _ in range(n)]

    def sample_document(self, rng: random.Random) -> Document:
        """One prose document drawn with `rng` (a `random.Random`, so callers can interleave other draws)."""
        cfg = self.config
        topic = rng.randrange(cfg.n_topics)
        formality = int(rng.random() < self.p_formal[topic])
        sentiment = int(rng.random() < self.p_positive[topic])
        tense = int(rng.random() < cfg.p_past)
        tokens, categories = [BOS], [CATEGORIES.index("special")]
        n_sentences = rng.randint(cfg.min_sentences, cfg.max_sentences)
        for _ in range(n_sentences):
            for slot in rng.choice(TEMPLATES):
                word, category = self._fill(slot, rng, topic, formality, sentiment, tense)
                tokens.append(word)
                categories.append(CATEGORIES.index(category))
        labels = {"topic": topic, "formality": formality, "sentiment": sentiment, "tense": tense,
                  "n_sentences": n_sentences}
        return Document("prose", tokens, self._token_labels(tokens, categories, labels), labels)

    def _fill(self, slot: str, rng: random.Random, topic: int, formality: int, sentiment: int,
              tense: int) -> tuple[str, str]:
        """The word for one template slot and its category."""
        if slot == "{NOUN}":
            word = rng.choices(self.nouns, cum_weights=self._cum["noun"][topic])[0]
            return word, "topic_noun" if word in self._word_topic else "shared_noun"
        if slot == "{VERB}":
            return rng.choices(self.verbs, cum_weights=self._cum["verb"][topic])[0][tense], "verb"
        if slot == "{ADJ}":
            return rng.choice(ADJECTIVES[sentiment]), "adjective"
        if slot == "{REG}":
            return rng.choice(REGISTER[formality]), "register"
        if slot == "{COP}":
            return COPULA[tense], "copula"
        if slot in ("{PERSON}", "{PLACE}", "{ORG}"):
            kind = slot[1:-1].lower()
            return rng.choice(ENTITIES[kind]), kind
        return slot, "function"

    def _token_labels(self, tokens: list[str], categories: list[int], labels: dict[str, int]) -> dict[str, np.ndarray]:
        n = len(tokens)
        out = {name: np.full(n, -1, dtype=np.int8) for name in CONCEPTS}
        out["category"][:] = categories
        out["topic"][1:] = labels["topic"]
        for i, word in enumerate(tokens):
            out["topic_word"][i] = self._word_topic.get(word, -1)
            out["sentiment"][i] = self._adjective.get(word, -1)
            out["formality"][i] = self._register.get(word, -1)
            out["entity"][i] = self._entity.get(word, -1)
            if word in self._verb_index:
                out["tense"][i] = self._verb_index[word][1]
            elif word in COPULA:
                out["tense"][i] = COPULA.index(word)
        return out

    # ---- the exact topic posterior ----------------------------------------------------------------------

    def topic_log_posterior(self, tokens: list[str]) -> np.ndarray:
        """log p(topic | tokens[:t+1]) for every position t, shape (T, n_topics); each BOS starts a new document.

        Under the generative story the likelihood of a prefix given topic c factorises into
        prod over nouns and verbs of p(word | c), times p(f | c) once a register word has revealed the formality
        f, times p(s | c) once an adjective has revealed the sentiment s. Every other factor (templates, names,
        tense, which adjective or register word of a pool) is the same for all topics and cancels.
        """
        log_prior = np.log(self.topic_prior)
        log_noun, log_verb = np.log(self.noun_probs), np.log(self.verb_probs)
        log_formal = np.log(np.stack([1 - self.p_formal, self.p_formal]))  # [f, c]
        log_positive = np.log(np.stack([1 - self.p_positive, self.p_positive]))  # [s, c]
        out = np.empty((len(tokens), len(log_prior)))
        score = log_prior.copy()
        seen_register = seen_adjective = False
        for t, word in enumerate(tokens):
            if word == BOS:
                score, seen_register, seen_adjective = log_prior.copy(), False, False
            elif word in self._noun_index:
                score += log_noun[:, self._noun_index[word]]
            elif word in self._verb_index:
                score += log_verb[:, self._verb_index[word][0]]
            elif word in self._register and not seen_register:
                score += log_formal[self._register[word]]
                seen_register = True
            elif word in self._adjective and not seen_adjective:
                score += log_positive[self._adjective[word]]
                seen_adjective = True
            out[t] = score - np.logaddexp.reduce(score)
        return out
