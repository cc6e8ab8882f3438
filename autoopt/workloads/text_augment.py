"""Training-text augmentations that change register, and synthetic token sequences.

A student distilled on one register (docstrings) learns that register rather than the
teacher. These turn real sentences into text of other shapes, so that distillation also
sees the teacher's behaviour there: each is a pure function of its input sentences, the
vocabulary and a seed (:func:`augment`), so a corpus built from them is deterministic.

- ``recombine``: the first part of one sentence joined to the last part of another;
- ``shuffle_clauses``: a sentence's clauses (split at , ; :) in a random order;
- ``drop_words``: about 20% of the words dropped;
- ``mask_words``: about 20% of the words replaced by random vocabulary words;
- ``crop``: a random span of 2-8 words (fragments, queries, headlines);
- ``punctuation``: punctuation stripped, or a question or exclamation made of a statement;
- ``casing``: lower, upper or title case (a no-op for an uncased tokenizer: measure first);
- ``shuffled_words``: all of a sentence's words in a random order (a bag of words);
- ``random_tokens``: 3-30 random vocabulary words, no sentence at all.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence

from autoopt.errors import WorkloadError

#: ``(sentence, another sentence, vocabulary, rng) -> text``
Augmentation = Callable[[str, str, Sequence[str], random.Random], str]

_CLAUSE = re.compile(r"\s*[,;:]\s+")
_PUNCT = re.compile(r"[^\w\s'-]")


def _recombine(a: str, b: str, _v: Sequence[str], rng: random.Random) -> str:
    wa, wb = a.split(), b.split()
    cut_a = rng.randint(1, max(1, len(wa) - 1))
    cut_b = rng.randint(1, max(1, len(wb) - 1))
    return " ".join(wa[:cut_a] + wb[cut_b:])


def _shuffle_clauses(a: str, _b: str, _v: Sequence[str], rng: random.Random) -> str:
    end = a[-1] if a[-1] in ".!?" else ""
    clauses = [c for c in _CLAUSE.split(a.rstrip(".!?")) if c]
    if len(clauses) < 2:  # one clause: swap its halves instead
        words = a.rstrip(".!?").split()
        cut = len(words) // 2
        clauses = [" ".join(words[cut:]), " ".join(words[:cut])]
    rng.shuffle(clauses)
    return ", ".join(c for c in clauses if c) + end


def _drop_words(a: str, _b: str, _v: Sequence[str], rng: random.Random) -> str:
    words = a.split()
    kept = [w for w in words if rng.random() >= 0.2]
    return " ".join(kept or words[:1])


def _mask_words(a: str, _b: str, vocabulary: Sequence[str], rng: random.Random) -> str:
    return " ".join(rng.choice(vocabulary) if rng.random() < 0.2 else w for w in a.split())


def _crop(a: str, _b: str, _v: Sequence[str], rng: random.Random) -> str:
    words = a.split()
    n = min(len(words), rng.randint(2, 8))
    start = rng.randint(0, len(words) - n)
    return " ".join(words[start : start + n])


def _punctuation(a: str, _b: str, _v: Sequence[str], rng: random.Random) -> str:
    bare = " ".join(_PUNCT.sub(" ", a).split())
    return rng.choice((bare, bare + "?", bare + "!", bare.lower() + " ..."))


def _casing(a: str, _b: str, _v: Sequence[str], rng: random.Random) -> str:
    return rng.choice((a.lower(), a.upper(), a.title()))


def _shuffled_words(a: str, _b: str, _v: Sequence[str], rng: random.Random) -> str:
    words = a.split()
    rng.shuffle(words)
    return " ".join(words)


def _random_tokens(_a: str, _b: str, vocabulary: Sequence[str], rng: random.Random) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 30)))


AUGMENTATIONS: dict[str, Augmentation] = {
    "recombine": _recombine,
    "shuffle_clauses": _shuffle_clauses,
    "drop_words": _drop_words,
    "mask_words": _mask_words,
    "crop": _crop,
    "punctuation": _punctuation,
    "casing": _casing,
    "shuffled_words": _shuffled_words,
    "random_tokens": _random_tokens,
}


def check_augmentations(fractions: Mapping[str, float], where: str) -> None:
    """Raise WorkloadError for an unknown name, a negative share or shares above 1 in all."""
    for name, share in fractions.items():
        if name not in AUGMENTATIONS:
            raise WorkloadError(
                f"{where}: unknown augmentation '{name}'; allowed: {', '.join(AUGMENTATIONS)}"
            )
        if not isinstance(share, int | float) or share < 0:
            raise WorkloadError(f"{where}: augmentation '{name}' must be a share >= 0; "
                                f"got {share!r}")  # fmt: skip
    if sum(fractions.values()) > 1:
        raise WorkloadError(f"{where}: augmentation shares add up to more than 1: "
                            f"{dict(fractions)}")  # fmt: skip


def augment(
    name: str, sentences: Sequence[str], n: int, vocabulary: Sequence[str], seed: int
) -> list[str]:
    """``n`` texts made by augmentation ``name`` from ``sentences`` (drawn with replacement,
    each paired with another for ``recombine``), the same for the same arguments."""
    if name not in AUGMENTATIONS:
        raise WorkloadError(f"unknown augmentation '{name}'; allowed: {', '.join(AUGMENTATIONS)}")
    if not sentences or not vocabulary:
        raise WorkloadError(f"augmentation '{name}' needs sentences and a vocabulary")
    # The name is part of the seed: two augmentations at one seed draw different sentences.
    rng = random.Random(f"{seed}:{name}")
    fn = AUGMENTATIONS[name]
    out = []
    for _ in range(n):
        a, b = rng.choice(sentences), rng.choice(sentences)
        text = fn(a, b, vocabulary, rng).strip()
        out.append(text or a)
    return out
