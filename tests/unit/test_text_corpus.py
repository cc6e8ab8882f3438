"""Offline text sources and training-text augmentations (no model, no torch)."""

from __future__ import annotations

import json

import pytest

from autoopt.errors import WorkloadError
from autoopt.workloads import eval_file, minilm_corpus, text_augment, text_sources

SENTENCES = [
    "The harbour master closed the port, because a storm was coming from the west.",
    "She bought three apples at the market on Sunday morning.",
    "Nobody expected the old bridge to survive another winter; it did.",
    "Our train was late again, so we walked home through the park.",
]
VOCAB = ["river", "table", "quiet", "window", "green", "music", "engine", "paper"]


@pytest.mark.parametrize("name", sorted(text_augment.AUGMENTATIONS))
def test_augmentation_is_deterministic_under_its_seed(name: str) -> None:
    first = text_augment.augment(name, SENTENCES, 40, VOCAB, seed=3)
    assert first == text_augment.augment(name, SENTENCES, 40, VOCAB, seed=3)
    assert first != text_augment.augment(name, SENTENCES, 40, VOCAB, seed=4)
    assert len(first) == 40 and all(t.strip() for t in first)


def test_augmentations_change_the_text_as_named() -> None:
    def one(name: str) -> list[str]:
        return text_augment.augment(name, SENTENCES, 30, VOCAB, seed=0)

    words = {w for s in SENTENCES for w in s.split()}
    assert all(len(t.split()) <= 8 for t in one("crop"))
    assert all(set(t.split()) <= set(VOCAB) for t in one("random_tokens"))
    assert any(set(t.split()) & set(VOCAB) for t in one("mask_words"))
    assert all(set(t.split()) <= words for t in one("drop_words"))
    assert all(sorted(t.split()) in [sorted(s.split()) for s in SENTENCES]
               for t in one("shuffled_words"))  # fmt: skip
    assert all("," not in t and ";" not in t for t in one("punctuation"))
    assert set(one("recombine")) - set(SENTENCES)  # new sentences, made of two


def test_augment_rejects_unknown_names_and_shares_above_one() -> None:
    with pytest.raises(WorkloadError, match="unknown augmentation 'crops'; allowed: recombine"):
        text_augment.check_augmentations({"crops": 0.1}, "where")
    with pytest.raises(WorkloadError, match="more than 1"):
        text_augment.check_augmentations({"crop": 0.6, "drop_words": 0.6}, "where")


def test_augmented_rows_replace_a_share_of_the_train_split_deterministically() -> None:
    rows = [("wiki", f"Sentence number {i} is about something.") for i in range(100)]
    fractions = {"crop": 0.1, "random_tokens": 0.05}
    out = minilm_corpus.augmented_rows(rows, fractions, VOCAB)
    assert out == minilm_corpus.augmented_rows(rows, fractions, VOCAB)
    sources = [src for src, _ in out]
    assert len(out) == 100
    assert (sources.count("aug:crop"), sources.count("aug:random_tokens")) == (10, 5)
    # Augmented texts are made from the train split's own sentences only.
    assert {s for src, s in out if src == "wiki"} <= {s for _, s in rows}


def test_wikitext_paragraphs_keep_the_prose_only() -> None:
    wikitext = (
        "{{Infobox person|name=Ada {{small|Lovelace}}}}\n"
        "'''Ada Lovelace''' was an English [[mathematician]] and [[Writer|writer]].<ref>A "
        "source.</ref> She worked on [[Charles Babbage|Babbage's]] engine.\n\n"
        "== Early life ==\n* A list item that is not prose.\n"
        "[[File:Ada.jpg|thumb|A [[portrait]] of her.]]\n{| class=wikitable\n| cell\n|}\n"
        "[[Category:Mathematicians]]"
    )
    paragraphs = text_sources.wikitext_paragraphs(wikitext)
    assert paragraphs == [
        "Ada Lovelace was an English mathematician and writer. She worked on Babbage's engine."
    ]
    assert list(text_sources.sentences(paragraphs)) == [
        "Ada Lovelace was an English mathematician and writer.",
        "She worked on Babbage's engine.",
    ]


@pytest.mark.parametrize(
    "text", ["Too short", "A [[link]] is markup, not running text here.", "x = y + z * 2 / 3"]
)
def test_is_text_rejects_markup_and_fragments(text: str) -> None:
    assert not text_sources.is_text(text)


@pytest.mark.parametrize("name", sorted(text_sources.SOURCES))
def test_text_source_reads_english_sentences_from_its_installed_package(name: str) -> None:
    sentences = text_sources.SOURCES[name].read()
    assert len(sentences) >= 300
    assert all(text_sources.is_text(s) for s in sentences)
    assert sentences == text_sources.SOURCES[name].read()  # the same, in the same order


def test_missing_package_names_the_fix() -> None:
    with pytest.raises(WorkloadError, match="pip install not-a-package"):
        text_sources.package_dir("not_a_package_here", "not-a-package")


def test_read_eval_file_names_groups_and_refuses_small_or_malformed_ones(tmp_path) -> None:
    lines = [{"text": f"Ticket {i}: the printer jams.", "group": "tickets"} for i in range(20)]
    lines += [{"text": f" Note {i} about lunch. "} for i in range(20)]
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    rows = eval_file.read_eval_file(path)
    assert rows[0] == ("tickets", "Ticket 0: the printer jams.")
    assert rows[20] == ("all", "Note 0 about lunch.")
    path.write_text("\n".join(json.dumps(x) for x in lines[:30]))
    with pytest.raises(WorkloadError, match=r"at least 20 sentences; got \{'all': 10\}"):
        eval_file.read_eval_file(path)
    path.write_text('{"text": "fine"}\n{"group": "x"}\n')
    with pytest.raises(WorkloadError, match="line 2 must be an object with a non-empty string"):
        eval_file.read_eval_file(path)
    path.write_text("not json\n")
    with pytest.raises(WorkloadError, match="line 1 is not JSON"):
        eval_file.read_eval_file(path)


def test_without_drops_held_out_sentences_whatever_their_case() -> None:
    rows = [("wiki", "The Cat sat."), ("wiki", "A dog ran."), ("code", "the cat sat.")]
    assert eval_file.without(rows, ["THE CAT SAT."]) == [("wiki", "A dog ran.")]
