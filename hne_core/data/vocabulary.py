"""The built-in vocabulary and grammar of the self-made corpus (a few hundred everyday English words).

Sentences are drawn from a handful of templates over word classes, so that every sentence is plausible to
a listener, has 3-8 words (about 2 s of speech) and the corpus has many unique sentences: the calibration
in docs/design-notes.md §4 showed that a small model learns from many unique sentences, not from repeats.
"""

from __future__ import annotations

import random

DETERMINERS = "the a this that every some my your our their one no".split()
ADJECTIVES = """big small red blue green old new young happy sad quick slow bright dark warm cold soft loud quiet
tall short long heavy light clean dirty busy lazy brave calm clever gentle proud rich poor strong weak sweet
sour fresh empty full early late lucky angry funny strange simple wild round flat sharp deep wide narrow
golden silver wooden broken hungry tired famous friendly""".split()
NOUNS = """cat dog bird fish horse cow sheep mouse rabbit fox bear lion tiger monkey duck frog snake
house tree car boat train plane bike road river lake hill mountain garden field forest city village street
door window table chair bed lamp clock book letter paper pen cup bowl plate knife spoon bottle box bag
coat hat shoe shirt ring key phone camera radio picture song story game ball kite drum guitar piano
teacher doctor farmer baker driver sailor singer painter child friend mother father sister brother
king queen soldier student neighbour captain pilot nurse cook
apple bread cheese cake soup rice tea coffee milk water orange lemon egg honey
sun moon star cloud rain snow wind storm morning evening night winter summer island bridge castle market
school office kitchen shop station""".split()
TRANSITIVE = """saw found took made gave kept sold bought carried painted opened closed cleaned washed moved
pushed pulled lifted dropped watched followed helped called visited fixed built broke wanted needed loved
liked hated missed caught threw kicked packed filled emptied counted checked chose borrowed lent
brought sent wrote read heard""".split()
INTRANSITIVE = """ran walked jumped slept smiled laughed cried waited stayed arrived left danced sang swam
shouted whispered fell rested worked played travelled returned listened""".split()
ADVERBS = """quickly slowly quietly loudly happily sadly gently carefully early late again today yesterday
outside inside away home there here together alone soon""".split()
PREPOSITIONS = "in on under over near behind beside across through into from with by past".split()
NAMES = """anna ben clara david emma frank grace henry isabel jack kate leo maria nick olivia peter rose sam
tom victor""".split()
NUMBERS = "two three four five six seven eight nine ten twelve twenty many".split()
PLURALS = """cats dogs birds horses cows sheep rabbits boats trains cars trees houses books letters cups
apples eggs stars children friends students soldiers""".split()

# A template is a sequence of slots; "?" marks an optional slot (kept with probability 1/2).
TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("DET", "ADJ?", "NOUN", "VT", "DET", "ADJ?", "NOUN"),
    ("DET", "ADJ?", "NOUN", "VI", "ADV"),
    ("NAME", "VT", "DET", "ADJ?", "NOUN", "PREP", "DET", "NOUN"),
    ("NUM", "ADJ?", "PLURAL", "VI", "PREP", "DET", "NOUN"),
    ("DET", "NOUN", "PREP", "DET", "NOUN", "VI", "ADV?"),
    ("NAME", "AND", "NAME", "VI", "ADV"),
    ("NAME", "VT", "NUM", "ADJ?", "PLURAL"),
    ("DET", "ADJ", "NOUN", "VI", "PREP", "DET", "NOUN"),
)

WORD_CLASSES: dict[str, list[str]] = {
    "DET": DETERMINERS,
    "ADJ": ADJECTIVES,
    "NOUN": NOUNS,
    "VT": TRANSITIVE,
    "VI": INTRANSITIVE,
    "ADV": ADVERBS,
    "PREP": PREPOSITIONS,
    "NAME": NAMES,
    "NUM": NUMBERS,
    "PLURAL": PLURALS,
    "AND": ["and"],
}


def vocabulary() -> set[str]:
    return {w for words in WORD_CLASSES.values() for w in words}


def random_sentence(rng: random.Random) -> str:
    words: list[str] = []
    for slot in rng.choice(TEMPLATES):
        if slot.endswith("?"):
            if rng.random() < 0.5:
                continue
            slot = slot[:-1]
        words.append(rng.choice(WORD_CLASSES[slot]))
    return " ".join(words)


def unique_sentences(n: int, rng: random.Random, max_tries_per_sentence: int = 50) -> list[str]:
    """``n`` distinct sentences, drawn in a fixed order from ``rng`` (so a seed fixes the list)."""
    seen: set[str] = set()
    out: list[str] = []
    budget = n * max_tries_per_sentence
    while len(out) < n:
        budget -= 1
        if budget < 0:
            raise ValueError(f"could not draw {n} distinct sentences from the built-in grammar")
        s = random_sentence(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
