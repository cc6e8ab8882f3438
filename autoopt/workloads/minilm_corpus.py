"""The MiniLM workload's text: an offline, deterministic English corpus, by source, cached.

Every sentence belongs to a named *source*, and a source is either held out for evaluation
(never trained or calibrated on: its sentences are not, and neither is any sentence of the
same origin) or used for training and calibration, never both:

- evaluation (:data:`EVAL_SOURCES`): ``docs``, the prose of the standard library's
  docstrings (public objects, read in a fresh interpreter that no installed package has
  patched, and its source files, read with ``ast``); ``news``, ``reviews`` and ``dialog``
  (:mod:`autoopt.workloads.text_sources`);
- training and calibration (:data:`TRAIN_SOURCES`): ``torch_docs``, the prose of the pinned
  torch's source docstrings; ``wikipedia`` (:mod:`autoopt.workloads.text_sources`); and
  ``templates``, generated sentences (variety in length and vocabulary).

The pools are deduplicated across each other (case-insensitively: the tokenizer is uncased;
held-out pools first, so a sentence that two sources share is held out), shuffled with a
fixed seed and cached as JSON under ``asset_dir("minilm")``, in a file named after a digest of
the corpus rules, the Python version and the versions of the packages read. The evaluation
split takes the same number of sentences from each held-out source; the train split may add
augmented and synthetic texts made from its own sentences (:func:`augmented_rows`).
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
from autoopt.workloads.text_templates import template_sentences

logger = logging.getLogger(__name__)

SEED = 0
#: Bump when the corpus rules change: the cached JSON is then rebuilt.
CORPUS_VERSION = "v5"
#: Share of generated sentences in the train and calibration splits at most.
TEMPLATE_FRACTION = 0.1
#: Sources held out for evaluation, and sources for training and calibration.
EVAL_SOURCES: tuple[str, ...] = ("docs", "news", "reviews", "dialog")
TRAIN_SOURCES: tuple[str, ...] = ("torch_docs", "wikipedia", "templates")
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


def _pools() -> dict[str, list[str]]:
    """Every source's sentences, in a fixed order (held-out sources first)."""
    from autoopt.workloads.text_sources import SOURCES

    stdlib_trees = tuple(t for t in SOURCE_TREES if t[0] == "stdlib")
    torch_trees = tuple(t for t in SOURCE_TREES if t[0] == "torch")
    return {
        "docs": [
            *prose_sentences(iter(stdlib_docstrings())),
            *prose_sentences(iter(source_docstrings(stdlib_trees))),
        ],
        "news": SOURCES["news"].read(),
        "reviews": SOURCES["reviews"].read(),
        "dialog": SOURCES["dialog"].read(),
        "torch_docs": list(prose_sentences(iter(source_docstrings(torch_trees)))),
        "wikipedia": SOURCES["wikipedia"].read(),
    }


def build_corpus() -> dict[str, Any]:
    """Every source's pool, deduplicated across all of them and shuffled with a fixed seed
    (what is cached as JSON), with the generated ``templates``."""
    seen: set[str] = set()
    pools = {name: _fresh(iter(pool), seen) for name, pool in _pools().items()}
    pools["templates"] = _fresh(iter(template_sentences(5000)), seen)
    for i, name in enumerate(sorted(pools)):
        random.Random(SEED + i).shuffle(pools[name])
    return {
        "version": CORPUS_VERSION,
        "python": ".".join(map(str, sys.version_info[:3])),
        "pools": pools,
    }


def corpus_key() -> str:
    """What the cached corpus depends on: its rules, Python's version (the standard
    library's docstrings) and the versions of the packages whose text it reads."""
    import hashlib
    from importlib.metadata import version

    from autoopt.workloads.text_sources import source_versions

    inputs = {
        "version": CORPUS_VERSION,
        "python": sys.version,
        "torch": version("torch"),
        **source_versions(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def corpus() -> dict[str, Any]:
    """The cached corpus, built on first use (a minute or two) under ``asset_dir("minilm")``."""
    from autoopt.workloads import asset_dir

    path = asset_dir("minilm") / f"corpus-{CORPUS_VERSION}-{corpus_key()}.json"
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return json.loads(path.read_text())
        data = build_corpus()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=0))
        tmp.replace(path)
        logger.info(
            "minilm corpus: %s sentences, cached in %s",
            {name: len(pool) for name, pool in data["pools"].items()}, path,
        )  # fmt: skip
        return data


def _deal(
    pools: Mapping[str, list[str]],
    cursor: dict[str, int],
    sources: Sequence[str],
    size: int,
    caps: Mapping[str, int],
) -> list[tuple[str, str]]:
    """``size`` rows from ``sources`` in equal shares; a source that runs out (or reaches its
    cap) leaves the rest to the others. Advances ``cursor``."""
    rows: list[tuple[str, str]] = []
    open_sources = list(sources)
    while len(rows) < size and open_sources:
        share = max(1, (size - len(rows)) // len(open_sources))
        for source in list(open_sources):
            room = min(len(pools[source]), caps.get(source, len(pools[source])))
            n = min(share, room - cursor[source], size - len(rows))
            rows += [(source, s) for s in pools[source][cursor[source] : cursor[source] + n]]
            cursor[source] += n
            if cursor[source] >= room:
                open_sources.remove(source)
    return rows


def split_texts(
    data: Mapping[str, Any],
    sizes: Mapping[str, int],
    *,
    train_sources: Sequence[str] = TRAIN_SOURCES,
    eval_sources: Sequence[str] = EVAL_SOURCES,
) -> dict[str, list[tuple[str, str]]]:
    """Deal the pools into disjoint splits; each split is then shuffled. Returns ``(source,
    sentence)`` pairs.

    ``evaluation`` takes the same number of sentences from each of ``eval_sources``;
    every other split (``calibration`` and then ``train``, in the order given) takes equal
    shares of ``train_sources``, with templates at most ``TEMPLATE_FRACTION`` of it. No
    source is in both lists, so no split but evaluation ever sees a held-out source.
    """
    pools: Mapping[str, list[str]] = data["pools"]
    unknown = [s for s in (*train_sources, *eval_sources) if s not in pools]
    if unknown:
        raise WorkloadError(
            f"workload 'minilm': unknown text source(s) {unknown}; allowed: {', '.join(pools)}"
        )
    if shared := set(train_sources) & set(eval_sources):
        raise WorkloadError(
            f"workload 'minilm': sources {sorted(shared)} cannot be both trained on and "
            "held out for evaluation"
        )
    cursor = dict.fromkeys(pools, 0)
    out: dict[str, list[tuple[str, str]]] = {}
    for i, (name, size) in enumerate(sizes.items()):
        if name == "evaluation":
            each = [size // len(eval_sources) + (j < size % len(eval_sources))
                    for j in range(len(eval_sources))]  # fmt: skip
            rows = []
            for source, n in zip(eval_sources, each, strict=True):
                rows += _deal(pools, cursor, [source], n, {})
        else:
            caps = {"templates": cursor["templates"] + round(size * TEMPLATE_FRACTION)}
            rows = _deal(pools, cursor, train_sources, size, caps)
        if len(rows) < size:
            available = {k: len(pools[k]) for k in (*eval_sources, *train_sources)}
            raise WorkloadError(
                f"workload 'minilm': the corpus has {available} sentences, too few for the "
                f"splits {dict(sizes)}; ask for smaller sizes"
            )
        random.Random(SEED + 10 + i).shuffle(rows)
        out[name] = rows
    return out


def augmented_rows(
    rows: Sequence[tuple[str, str]],
    fractions: Mapping[str, float],
    vocabulary: Sequence[str],
    seed: int = SEED,
) -> list[tuple[str, str]]:
    """The train split with ``fractions`` of it replaced by augmented or synthetic texts made
    from its own sentences (:mod:`autoopt.workloads.text_augment`), each tagged with its
    augmentation as its source (``aug:crop``). Same size, same result for the same inputs."""
    from autoopt.workloads.text_augment import augment, check_augmentations

    check_augmentations(fractions, "workload 'minilm': augment")
    counts = {name: round(len(rows) * share) for name, share in sorted(fractions.items())}
    real = list(rows[: len(rows) - sum(counts.values())])
    sentences = [s for _, s in real]
    out = list(real)
    for name, n in counts.items():
        out += [(f"aug:{name}", t) for t in augment(name, sentences, n, vocabulary, seed)]
    random.Random(seed + 20).shuffle(out)
    return out
