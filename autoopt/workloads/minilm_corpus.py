"""The MiniLM workload's text: an offline, deterministic English corpus, cached.

English sentences from the docstrings of a fixed list of standard-library modules (natural
prose, read in a fresh interpreter that no installed package has patched) plus sentences
generated from templates (variety in length and vocabulary), and, for large train splits, the
prose in the docstrings of the standard library's and the pinned torch's source files (read
with ``ast``). The pools are deduplicated across each other (case-insensitively: the tokenizer
is uncased), shuffled with a fixed seed, cached as JSON under ``asset_dir("minilm")``, and
dealt into disjoint evaluation / calibration / train splits, each with the same share of
templates while they last. The evaluation split is dealt first, so it does not change when the
other sizes do.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from autoopt.errors import WorkloadError

logger = logging.getLogger(__name__)

SEED = 0
#: Bump when the corpus rules change: the cached JSON is then rebuilt.
CORPUS_VERSION = "v4"
#: Share of generated sentences in every split; the rest is standard-library prose.
TEMPLATE_FRACTION = 0.25
MIN_WORDS, MAX_WORDS = 5, 60

#: Standard-library modules whose docstrings are mostly prose. Modules that fail to import on
#: this Python (a build without sqlite3 or tkinter) are skipped.
STDLIB_MODULES: tuple[str, ...] = (
    "abc", "argparse", "ast", "asyncio", "base64", "bdb", "bisect", "bz2", "calendar", "cmd",
    "codecs", "collections", "concurrent.futures", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "email.message",
    "email.utils", "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib",
    "functools", "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html",
    "html.parser", "http.client", "http.cookiejar", "http.server", "imaplib", "inspect", "io",
    "ipaddress", "itertools", "json", "locale", "logging", "logging.handlers", "lzma",
    "mailbox", "math", "mimetypes", "multiprocessing", "netrc", "numbers", "operator",
    "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil", "platform",
    "plistlib", "poplib", "pprint", "profile", "pstats", "pydoc", "queue", "quopri", "random",
    "re", "reprlib", "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "signal",
    "site", "smtplib", "socket", "socketserver", "sqlite3", "ssl", "stat", "statistics",
    "string", "struct", "subprocess", "symtable", "sys", "tabnanny", "tarfile", "tempfile",
    "textwrap", "threading", "time", "timeit", "tokenize", "trace", "traceback",
    "tracemalloc", "types", "typing", "unittest", "unittest.mock", "urllib.parse",
    "urllib.request", "uuid", "warnings", "wave", "weakref", "webbrowser", "xml.dom.minidom",
    "xml.etree.ElementTree", "xml.sax", "xmlrpc.client", "zipfile", "zipimport", "zlib",
    "zoneinfo",
)  # fmt: skip

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
#: Characters, and patterns, that mark code, markup or references rather than prose.
_CODE_CHARS = set("()[]{}<>=_*#|\\`@$%^~+")
_CODE_PATTERN = re.compile(r"\w\.\w|>>>|::|\.\.|--|[a-z][A-Z]|\w/\w|\bself\b|\bNone\b")


def _walk_docstrings(module_names: list[str]) -> list[str]:
    """The docstrings of each module, its public functions and classes, and their methods.

    Runs in a fresh ``python -I -S`` (see :func:`stdlib_docstrings`), so it must stay
    self-contained: standard-library imports inside, no names from this module.
    """
    import importlib
    import inspect
    import sys

    def is_stdlib(obj: object) -> bool:
        target = obj.fget if isinstance(obj, property) else obj
        module = getattr(target, "__module__", None) or ""
        return module.split(".")[0] in sys.stdlib_module_names

    def public(namespace: object) -> list[object]:
        # A module's __all__ is read with getattr, so lazily imported names
        # (concurrent.futures.ProcessPoolExecutor) are there whether touched before or not.
        is_module = inspect.ismodule(namespace)
        names = getattr(namespace, "__all__", None) if is_module else None
        if names is None:
            names = list(vars(namespace))
        out = []
        for name in sorted(set(names)):
            if name.startswith("_"):
                continue
            try:
                out.append(getattr(namespace, name) if is_module else vars(namespace)[name])
            except (AttributeError, KeyError):
                continue
        return out

    docs: list[str] = []
    for name in module_names:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any import failure just leaves the module out
            continue
        docs.append(inspect.getdoc(module) or "")
        for obj in public(module):
            if not (inspect.isclass(obj) or inspect.isroutine(obj)) or not is_stdlib(obj):
                continue
            doc = inspect.getdoc(obj) or ""
            docs.append(doc)
            if inspect.isclass(obj):
                for member in public(obj):
                    if inspect.isroutine(member) or isinstance(member, property):
                        member_doc = inspect.getdoc(member) or ""
                        if is_stdlib(member) and member_doc != doc:
                            docs.append(member_doc)
    return [d for d in docs if d]


def stdlib_docstrings(module_names: Sequence[str] = STDLIB_MODULES) -> list[str]:
    """:func:`_walk_docstrings` in a fresh interpreter without site-packages.

    In this process, imported packages patch the standard library (Ray's gRPC replaces
    ``inspect.isgenerator``, transformers adds ``logging.Logger.warning_once``), so the
    docstrings found here would depend on what the caller imported before; a clean
    ``python -I -S`` sees the standard library only, the same in every process.
    """
    import subprocess
    import textwrap

    code = (
        textwrap.dedent(inspect.getsource(_walk_docstrings))
        + "\nimport json, sys\njson.dump(_walk_docstrings(json.load(sys.stdin)), sys.stdout)\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code],
            input=json.dumps(list(module_names)),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return list(json.loads(proc.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        detail = getattr(e, "stderr", None) or ""
        raise WorkloadError(
            f"workload 'minilm': collecting standard-library docstrings failed: {e} {detail}"
        ) from e


def is_prose(sentence: str) -> bool:
    """An ASCII English sentence of 5-60 words that does not look like code or markup."""
    words = sentence.split()
    return (
        sentence.isascii()
        and MIN_WORDS <= len(words) <= MAX_WORDS
        and sentence[0].isupper()
        and sentence[-1] in ".!?"
        and sum(w[0].isalpha() for w in words) >= 0.8 * len(words)
        and not _CODE_CHARS & set(sentence)
        and not _CODE_PATTERN.search(sentence)
    )


def prose_sentences(docs: Iterator[str]) -> Iterator[str]:
    """Split docstrings into prose sentences, leaving out code, lists, tables and headings."""
    for doc in docs:
        for paragraph in re.split(r"\n\s*\n", doc):
            lines = paragraph.splitlines()
            # getdoc dedents: an indented line is a code block, a definition or a list body.
            if any(line[:1].isspace() or line.lstrip()[:1] in "-*+|=:>" for line in lines):
                continue
            text = " ".join(line.strip() for line in lines)
            for sentence in _SENTENCE_END.split(text):
                sentence = sentence.strip()
                if is_prose(sentence):
                    yield sentence


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


def template_sentences(n: int, seed: int = SEED) -> list[str]:
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


#: Where the train split's prose continues once the public docstrings run out: the source
#: files of the standard library and of the pinned torch (``package: skipped directories``).
SOURCE_TREES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("stdlib", ("test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages")),
    ("torch", ("test", "tests", "testing")),
)


def _source_root(name: str) -> Path | None:
    """A source tree's directory, found without importing it (None when not installed)."""
    import importlib.util
    import sysconfig

    if name == "stdlib":
        return Path(sysconfig.get_paths()["stdlib"])
    spec = importlib.util.find_spec(name)
    locations = spec.submodule_search_locations if spec else None
    return Path(next(iter(locations))) if locations else None


def source_docstrings(trees: Sequence[tuple[str, Sequence[str]]] = SOURCE_TREES) -> list[str]:
    """Every module, class and function docstring in the ``.py`` files of ``trees``, read with
    :mod:`ast` (nothing is imported, so nothing is patched and nothing runs), in path order."""
    import ast

    docs: list[str] = []
    for name, skipped in trees:
        root = _source_root(name)
        if root is None:
            continue
        for path in sorted(root.rglob("*.py")):
            if set(path.relative_to(root).parts[:-1]) & set(skipped):
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(
                    node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                ):
                    doc = ast.get_docstring(node)
                    if doc:
                        docs.append(doc)
    return docs


def _fresh(sentences: Iterator[str], seen: set[str]) -> list[str]:
    """The sentences not in ``seen`` (case- and whitespace-insensitively), which grows."""
    out = []
    for sentence in sentences:
        key = " ".join(sentence.casefold().split())
        if key not in seen:
            seen.add(key)
            out.append(sentence)
    return out


def build_corpus() -> dict[str, Any]:
    """The three pools, deduplicated across each other and shuffled with a fixed seed (what is
    cached as JSON): the standard library's public docstrings (``natural``), generated
    sentences (``template``), and the docstrings of the standard library's and torch's source
    files (``source``), which only the train split reaches."""
    seen: set[str] = set()
    natural = _fresh(prose_sentences(iter(stdlib_docstrings())), seen)
    templates = _fresh(iter(template_sentences(len(natural) // 2)), seen)
    source = _fresh(prose_sentences(iter(source_docstrings())), seen)
    for i, pool in enumerate((natural, templates, source)):
        random.Random(SEED + i).shuffle(pool)
    return {
        "version": CORPUS_VERSION,
        "python": ".".join(map(str, sys.version_info[:3])),
        "natural": natural,
        "template": templates,
        "source": source,
    }


def corpus() -> dict[str, Any]:
    """The cached corpus, built on first use (a few seconds) under ``asset_dir("minilm")``.

    The docstrings differ slightly between Python versions; the cache pins the corpus for
    every process that shares it.
    """
    from autoopt.workloads import asset_dir

    path = asset_dir("minilm") / f"corpus-{CORPUS_VERSION}.json"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return json.loads(path.read_text())
        data = build_corpus()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=0))
        tmp.replace(path)
        logger.info(
            "minilm corpus: %d sentences from public docstrings, %d generated, %d from source "
            "files, cached in %s",
            len(data["natural"]), len(data["template"]), len(data["source"]), path,
        )  # fmt: skip
        return data


def split_texts(
    data: Mapping[str, Any], sizes: Mapping[str, int]
) -> dict[str, list[tuple[str, str]]]:
    """Deal the pools into disjoint splits, in the order given; every split is then shuffled.
    Returns ``(pool, sentence)`` pairs.

    Each split takes ``TEMPLATE_FRACTION`` of its sentences from the templates while they
    last, and the rest from the public docstrings, then from the source files' docstrings. The
    evaluation and calibration splits (dealt first) come from the first two pools only, so a
    larger train split leaves them unchanged.
    """
    pools = {name: list(data[name]) for name in ("template", "natural", "source")}
    cursor = dict.fromkeys(pools, 0)
    out: dict[str, list[tuple[str, str]]] = {}
    for i, (name, size) in enumerate(sizes.items()):
        wanted = {"template": round(size * TEMPLATE_FRACTION)}
        rows: list[tuple[str, str]] = []
        for source, pool in pools.items():
            n = min(wanted.get(source, size - len(rows)), len(pool) - cursor[source])
            rows += [(source, s) for s in pool[cursor[source] : cursor[source] + n]]
            cursor[source] += n
        if len(rows) < size:
            available = {k: len(v) for k, v in pools.items()}
            raise WorkloadError(
                f"workload 'minilm': the corpus has {available} sentences, too few for the "
                f"splits {dict(sizes)}; ask for smaller sizes"
            )
        random.Random(SEED + 10 + i).shuffle(rows)
        out[name] = rows
    return out
