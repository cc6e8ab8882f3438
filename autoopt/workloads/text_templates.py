"""Generated English sentences: subject, verb, object and a tail, in a few sentence patterns;
a share of the MiniLM workload's training text (:mod:`autoopt.workloads.minilm_corpus`),
so that it is not all documentation prose."""

from __future__ import annotations

import random

_SUBJECTS = (
    "the engineer", "a small team of volunteers", "the new library", "my neighbour",
    "the city council", "a careful reader", "the old lighthouse keeper", "our test suite",
    "the morning train", "a curious student", "the museum guide", "her younger brother",
    "the night shift nurse", "a local bakery", "the weather service", "the hiking club",
    "an anonymous donor", "the orchestra", "the football coach", "a retired teacher",
    "the research group", "the ferry captain", "the school board", "a stray cat",
)  # fmt: skip
_VERBS = (
    "repaired", "described", "ignored", "celebrated", "measured", "rebuilt", "questioned",
    "photographed", "announced", "postponed", "painted", "explained", "discovered",
    "delivered", "borrowed", "reviewed", "cleaned", "planned", "moved", "recommended",
)  # fmt: skip
_OBJECTS = (
    "the broken window", "a quiet garden behind the station", "the annual report",
    "every slow query", "the river crossing", "an unusual recipe", "the wooden bridge",
    "a map of the coastline", "the festival schedule", "the missing keys", "a new bicycle lane",
    "the results of the survey", "the leaking roof", "a collection of old letters",
    "the evening concert", "the hospital's heating system", "a detailed travel plan",
    "the rules of the game", "the empty warehouse", "a story about the harbour",
)  # fmt: skip
_TAILS = (
    "before the storm arrived", "after a long meeting", "with surprising patience",
    "because nobody else would", "during the winter holidays", "without asking for help",
    "in under an hour", "for the third time this year", "despite the heavy rain",
    "while the children were asleep", "on a quiet Sunday morning", "at the request of the mayor",
    "as the sun went down", "with a little help from friends", "long before anyone noticed",
    "to everyone's surprise", "in front of a large crowd", "as part of a school project",
)  # fmt: skip
_PATTERNS = (
    "{S} {V} {O}.",
    "{S} {V} {O} {T}.",
    "Yesterday {S} {V} {O} {T}.",
    "Nobody expected that {S} {V} {O} {T}.",
    "Although {S} {V} {O}, {S2} {V2} {O2} {T}.",
    "{S} {V} {O} {T}, and then {S2} {V2} {O2} {T2}.",
    "Did you hear that {S} {V} {O} {T}?",
    "According to {S2}, {S} {V} {O} {T}, which {V2} {O2} {T2}.",
)


def template_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct generated sentences of 5 to about 40 words, fixed by ``seed``."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(50 * n):
        if len(out) == n:
            break
        s = rng.choice(_PATTERNS).format(
            S=rng.choice(_SUBJECTS), V=rng.choice(_VERBS), O=rng.choice(_OBJECTS),
            T=rng.choice(_TAILS), S2=rng.choice(_SUBJECTS), V2=rng.choice(_VERBS),
            O2=rng.choice(_OBJECTS), T2=rng.choice(_TAILS),
        )  # fmt: skip
        s = s[0].upper() + s[1:]
        if s.casefold() not in seen:
            seen.add(s.casefold())
            out.append(s)
    return out
