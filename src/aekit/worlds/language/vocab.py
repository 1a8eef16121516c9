"""The fixed word pools of the toy language and the one vocabulary every tokenizer and model of it shares.

The vocabulary does not depend on any configuration: a `LanguageConfig` only chooses which pools are used and
how, so every checkpoint trained on the language reads every document of it. Pools that carry a concept
(topic nouns and verbs, sentiment adjectives, entity names, register words) are pairwise disjoint, so each
token names its category and the exact topic posterior can be read off the words alone.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BOS",
    "PAD",
    "UNK",
    "SPECIAL_TOKENS",
    "Topic",
    "TOPICS",
    "SHARED_NOUNS",
    "ADJECTIVES",
    "ENTITIES",
    "ENTITY_TYPES",
    "REGISTER",
    "COPULA",
    "FUNCTION_WORDS",
    "IOI_PLACES",
    "IOI_OBJECTS",
    "IOI_WORDS",
    "GT_NOUNS",
    "GT_WORDS",
    "YEARS",
    "DOC_PARAMS",
    "DOC_FUNCTIONS",
    "DOC_DESCRIPTIONS",
    "DOC_WORDS",
    "INDUCTION_WORDS",
    "VOCAB",
]

BOS = "<|endoftext|>"  # begins every document, as GPT-2's separator does; also the EOS token
PAD = "<pad>"
UNK = "<unk>"
SPECIAL_TOKENS = (BOS, PAD, UNK)


@dataclass(frozen=True)
class Topic:
    """One topic: its own nouns and verbs (present, past) and the stated concept dependencies on it."""

    name: str
    nouns: tuple[str, ...]
    verbs: tuple[tuple[str, str], ...]
    p_formal: float  # P(formality = formal | topic): formality depends on topic
    p_positive: float  # P(sentiment = positive | topic): sentiment depends on topic


TOPICS: tuple[Topic, ...] = (
    Topic("sports",
          ("team", "coach", "match", "goal", "league", "stadium", "player", "season", "trophy", "referee", "ball",
           "score"),
          (("wins", "won"), ("scores", "scored"), ("trains", "trained"), ("kicks", "kicked"),
           ("defends", "defended"), ("plays", "played")),
          p_formal=0.25, p_positive=0.75),
    Topic("cooking",
          ("recipe", "oven", "soup", "kitchen", "chef", "flour", "sauce", "bread", "garlic", "pan", "dessert",
           "spice"),
          (("bakes", "baked"), ("stirs", "stirred"), ("chops", "chopped"), ("tastes", "tasted"),
           ("boils", "boiled"), ("serves", "served")),
          p_formal=0.15, p_positive=0.85),
    Topic("science",
          ("experiment", "theory", "molecule", "laboratory", "telescope", "cell", "particle", "hypothesis",
           "sample", "energy", "researcher", "formula"),
          (("measures", "measured"), ("observes", "observed"), ("tests", "tested"), ("discovers", "discovered"),
           ("predicts", "predicted"), ("analyzes", "analyzed")),
          p_formal=0.85, p_positive=0.5),
    Topic("finance",
          ("market", "bank", "stock", "investor", "loan", "profit", "budget", "currency", "fund", "tax", "share",
           "price"),
          (("invests", "invested"), ("trades", "traded"), ("earns", "earned"), ("lends", "lent"),
           ("buys", "bought"), ("sells", "sold")),
          p_formal=0.9, p_positive=0.3),
    Topic("travel",
          ("journey", "hotel", "flight", "passport", "beach", "luggage", "map", "museum", "tourist", "island",
           "guide", "ticket"),
          (("visits", "visited"), ("flies", "flew"), ("explores", "explored"), ("packs", "packed"),
           ("arrives", "arrived"), ("books", "booked")),
          p_formal=0.4, p_positive=0.7),
)

# Nouns every topic uses, each with its own topic-dependent weight: they make the topic posterior move gradually.
SHARED_NOUNS = ("plan", "result", "report", "group", "place", "day", "idea", "problem", "system", "record")

ADJECTIVES: dict[int, tuple[str, ...]] = {  # sentiment 0 = negative, 1 = positive
    0: ("terrible", "awful", "poor", "sad", "horrible", "dreadful", "boring", "disappointing"),
    1: ("great", "wonderful", "excellent", "happy", "brilliant", "lovely", "superb", "pleasant"),
}

ENTITY_TYPES = ("person", "place", "org")
ENTITIES: dict[str, tuple[str, ...]] = {
    "person": ("Mary", "John", "Alice", "Bob", "Sarah", "David", "Emma", "James", "Laura", "Michael", "Anna",
               "Peter", "Kate", "Tom", "Lisa", "Mark", "Julia", "Paul", "Rachel", "Daniel", "Susan", "Kevin",
               "Helen", "Steven", "Linda", "Brian", "Nancy", "George", "Karen", "Eric", "Amy", "Frank", "Grace",
               "Henry", "Irene", "Jack", "Olivia", "Oscar", "Ruth", "Victor"),
    "place": ("Paris", "London", "Tokyo", "Berlin", "Rome", "Madrid", "Cairo", "Lima", "Oslo", "Vienna",
              "Dublin", "Lisbon", "Prague", "Sydney", "Toronto"),
    "org": ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne",
            "Soylent", "Monarch"),
}

REGISTER: dict[int, tuple[str, ...]] = {  # formality 0 = informal, 1 = formal
    0: ("yeah", "totally", "basically", "honestly", "anyway", "okay", "wow", "seriously"),
    1: ("moreover", "therefore", "furthermore", "indeed", "consequently", "hence", "thus", "accordingly"),
}

COPULA = ("is", "was")  # present, past: the only tense-bearing function word
FUNCTION_WORDS = ("the", "a", "it", "in", "at", "from", "and", "with", "for", "of", "about", "near", ".", ",", "!")

# Task words. They never appear in prose, so task text carries no topic evidence.
IOI_PLACES = ("store", "park", "school", "restaurant", "office", "garden", "station", "library", "hospital",
              "cinema")
IOI_OBJECTS = ("drink", "book", "ring", "letter", "gift", "bag", "key", "card", "flower", "coin")
IOI_WORDS = ("When", "After", "While", "Then", "went", "to", "came", "were", "working", "had", "long", "gave",
             "handed", "passed", "brought")
GT_NOUNS = ("war", "siege", "reign", "drought", "famine", "dynasty", "voyage", "strike", "crusade", "expedition",
            "plague", "rebellion")
GT_WORDS = ("The", "lasted", "year")
YEARS = tuple(f"{y:02d}" for y in range(100))  # two-digit tokens; "17" "32" spells the year 1732
DOC_PARAMS = ("x", "y", "z", "n", "k", "key", "value", "path", "name", "size", "mode", "index", "count", "limit",
              "text", "url", "port", "user", "items", "config", "flag", "width", "height", "depth", "offset",
              "start", "stop", "step", "rate", "scale", "label", "color", "shape", "source", "target", "prefix",
              "suffix", "timeout", "verbose", "seed")
DOC_FUNCTIONS = ("load", "save", "parse", "run", "build", "check", "update", "render", "send", "fetch", "merge",
                 "split")
DOC_DESCRIPTIONS = ("number", "file", "string", "list", "object", "option", "amount", "location", "setting",
                    "handle", "mapping", "buffer")
DOC_WORDS = ("def", "param", "(", ")", ":", '"""', "an", "input", "output", "new", "old", "current")



def _named_pools() -> list[tuple[str, ...]]:
    """Every pool except the induction words, specials first, in the fixed vocabulary order."""
    pools: list[tuple[str, ...]] = [SPECIAL_TOKENS]
    for topic in TOPICS:
        pools += [topic.nouns, tuple(form for pair in topic.verbs for form in pair)]
    pools += [SHARED_NOUNS, *ADJECTIVES.values(), *ENTITIES.values(), *REGISTER.values(), COPULA, FUNCTION_WORDS]
    pools += [IOI_PLACES, IOI_OBJECTS, IOI_WORDS, GT_NOUNS, GT_WORDS, YEARS]
    pools += [DOC_PARAMS, DOC_FUNCTIONS, DOC_DESCRIPTIONS, DOC_WORDS]
    return pools


def _pseudo_words(n: int, taken: set[str]) -> tuple[str, ...]:
    """`n` distinct nonsense words (consonant-vowel-consonant-vowel) that are in no other pool ('mode' is)."""
    onsets, vowels, codas = "bdfgklmnprstvz", "aeiou", "bdgklmnprstz"
    words = [o + v + c + w for o in onsets for v in vowels for c in codas for w in vowels]
    spread = [words[(i * 7919) % len(words)] for i in range(len(words))]  # 7919 is prime to len: a permutation
    return tuple([w for w in spread if w not in taken][:n])


INDUCTION_WORDS = _pseudo_words(200, {w for pool in _named_pools() for w in pool})
# All words in a fixed order; words shared by pools of different tasks ('the', 'to') are kept once.
VOCAB: tuple[str, ...] = tuple(dict.fromkeys(w for pool in [*_named_pools(), INDUCTION_WORDS] for w in pool))
