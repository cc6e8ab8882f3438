"""The stage cache: local folders and fsspec URLs, atomic publish under concurrent writers.

Artifacts here are ONNX-kind files with arbitrary bytes (the cache never parses them), so no
test imports torch and the spawned writers start quickly.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest

from autoopt.artifacts import OnnxArtifact
from autoopt.cache import META, MIRROR_DIR, StageCache, stage_key

KEY = stage_key("", "teacher:test", {"version": 1}, "")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class BytesArtifact:
    """An ONNX-kind artifact holding given bytes; ``delay`` makes saving slow (contention)."""

    data: bytes
    delay: float = 0.0
    kind: str = "onnx"

    def save(self, directory: Path) -> Path:
        path = directory / OnnxArtifact.FILENAME
        with path.open("wb") as f:
            half = len(self.data) // 2
            f.write(self.data[:half])
            time.sleep(self.delay)  # a reader must never see this half-written file
            f.write(self.data[half:])
        return path


def _payload(tag: str, size: int = 256 * 1024) -> bytes:
    return (tag.encode() * (size // len(tag) + 1))[:size]


def _publish(cache: StageCache, data: bytes, key: str = KEY, **kw: Any) -> Any:
    return cache.publish(key, BytesArtifact(data, **kw), {"stage": "test", "sha256": _sha(data)})


def _assert_consistent(entry: Any) -> bytes:
    """The entry's file is whole and is the content its meta describes."""
    data = (entry.path / OnnxArtifact.FILENAME).read_bytes()
    assert entry.meta["sha256"] == _sha(data)
    assert entry.meta["files"] == {"model.onnx": {"size": len(data), "sha256": _sha(data)}}
    assert json.loads((entry.path / META).read_text()) == entry.meta
    return data


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("AUTOOPT_HOME", str(home))
    return home


@pytest.fixture()
def memory_url() -> Iterator[str]:
    url = f"memory://autoopt-cache-{uuid.uuid4().hex[:8]}"
    yield url
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path, memory_url: str) -> str:
    return str(tmp_path / "cache") if request.param == "local" else memory_url


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.startswith((".tmp-", ".evict-"))]


# ---- round trips ------------------------------------------------------------------------------


def test_stage_cache_publish_then_lookup_round_trip(root: str) -> None:
    cache = StageCache(root)
    assert cache.lookup(KEY) is None
    data = _payload("first")
    entry = _publish(cache, data)
    assert entry.key == KEY and entry.path == cache.path(KEY) and entry.meta["stage"] == "test"
    assert _assert_consistent(entry) == data
    loaded = entry.load()
    assert isinstance(loaded, OnnxArtifact) and loaded.path.read_bytes() == data

    again = StageCache(root).lookup(KEY)
    assert again is not None and again.meta == entry.meta
    # The key is taken: a later writer's different content is dropped, the first one kept.
    assert _assert_consistent(_publish(StageCache(root), _payload("second"))) == data
    assert [e.key for e in StageCache(root).entries()] == [KEY]
    assert _leftovers(cache.root) == []


def test_stage_cache_local_layout_and_file_url(tmp_path: Path) -> None:
    entry = _publish(StageCache(tmp_path / "cache"), b"x" * 100)
    assert entry.path == (tmp_path / "cache" / KEY[:2] / KEY)
    via_url = StageCache(f"file://{tmp_path}/cache/")
    assert via_url.root == tmp_path / "cache"
    found = via_url.lookup(KEY)
    assert found is not None and found.path == entry.path


def test_stage_cache_url_publishes_writer_folder_then_meta_and_mirrors_locally(
    memory_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _home: Path
) -> None:
    data = _payload("remote")
    entry = _publish(StageCache(memory_url), data)
    fs, base = fsspec.core.url_to_fs(memory_url)
    meta = json.loads(fs.cat_file(f"{base}/{KEY}/{META}"))
    writer = meta["writer"]
    assert fs.cat_file(f"{base}/{KEY}/{writer}/model.onnx") == data
    assert entry.meta == meta and entry.path.is_relative_to(_home / MIRROR_DIR)

    # Another machine (another AUTOOPT_HOME): lookup downloads into its own mirror.
    other_home = tmp_path / "other-home"
    monkeypatch.setenv("AUTOOPT_HOME", str(other_home))
    other = StageCache(memory_url)
    assert other.path(KEY).exists() is False
    fetched = other.lookup(KEY)
    assert fetched is not None and fetched.path.is_relative_to(other_home / MIRROR_DIR)
    assert _assert_consistent(fetched) == data
    assert [e.key for e in other.entries()] == [KEY]
    assert _leftovers(other.root) == []


# ---- concurrent writers -----------------------------------------------------------------------


def _writer(root: str, home: str, tag: str, barrier: Any, results: Any) -> None:
    os.environ["AUTOOPT_HOME"] = home
    cache = StageCache(root)
    data = _payload(tag, 1024 * 1024)
    barrier.wait(timeout=30)
    entry = _publish(cache, data, delay=0.2)
    published = (entry.path / OnnxArtifact.FILENAME).read_bytes()
    results.put((tag, _sha(data), entry.meta["sha256"], _sha(published), str(entry.path)))


def test_stage_cache_concurrent_writers_publish_exactly_one_entry(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ctx = mp.get_context("spawn")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(
            target=_writer, args=(str(root), str(tmp_path / "home"), f"w{i}", barrier, results)
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    published = {r[2] for r in got}
    assert len(published) == 1, got  # every writer was handed the same entry
    assert all(r[2] == r[3] for r in got)  # ... whose file is the content its meta names
    assert sum(r[1] == r[2] for r in got) == 1  # and exactly one writer's content won
    assert {r[4] for r in got} == {str(root / KEY[:2] / KEY)}
    assert sorted(p.name for p in (root / KEY[:2]).iterdir()) == [KEY]  # no temp folders
    entries = StageCache(root).entries()
    assert len(entries) == 1 and _assert_consistent(entries[0])


def test_stage_cache_concurrent_writers_on_url_agree(memory_url: str) -> None:
    n = 6
    barrier = threading.Barrier(n)
    got: list[tuple[str, str]] = []

    def write(i: int) -> None:
        cache = StageCache(memory_url)
        barrier.wait(timeout=30)
        entry = _publish(cache, _payload(f"t{i}"), delay=0.05)
        got.append((entry.meta["sha256"], _sha((entry.path / "model.onnx").read_bytes())))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == n and len(set(got)) == 1 and all(a == b for a, b in got)
    fs, base = fsspec.core.url_to_fs(memory_url)
    meta = json.loads(fs.cat_file(f"{base}/{KEY}/{META}"))
    assert _sha(fs.cat_file(f"{base}/{KEY}/{meta['writer']}/model.onnx")) == meta["sha256"]
    # Writers whose create-only meta write was refused removed their folders. (The memory
    # store's create is check-then-write, so two writers may rarely both commit: the
    # documented harmless race, which leaves the overwritten writer's folder behind.)
    folders = [p for p in fs.ls(f"{base}/{KEY}", detail=False) if not p.endswith(META)]
    assert f"{base}/{KEY}/{meta['writer']}" in folders and len(folders) < n, folders


def _other_node(url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> StageCache:
    """The cache as another machine sees it: same URL, its own (empty) local mirror."""
    monkeypatch.setenv("AUTOOPT_HOME", str(home))
    return StageCache(url)


def test_stage_cache_url_writer_that_loses_keeps_the_winner(
    memory_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = _publish(StageCache(memory_url), _payload("winner"))
    late = _other_node(memory_url, tmp_path / "late-node", monkeypatch)
    looked: list[bool] = []
    real_lookup = late.lookup

    def lookup_before_winner(key: str) -> Any:  # it checked before the winner committed
        if not looked:
            looked.append(True)
            return None
        return real_lookup(key)

    late.lookup = lookup_before_winner  # type: ignore[method-assign]
    entry = _publish(late, _payload("late"))
    assert entry.meta["sha256"] == winner.meta["sha256"] and _assert_consistent(entry)
    fs, base = fsspec.core.url_to_fs(memory_url)
    folders = [p.rsplit("/", 1)[-1] for p in fs.ls(f"{base}/{KEY}", detail=False)]
    assert sorted(folders) == sorted([META, winner.meta["writer"]])


# ---- eviction and incomplete entries --------------------------------------------------------


def test_stage_cache_evict_removes_entry_everywhere(root: str) -> None:
    cache = StageCache(root)
    _publish(cache, b"a" * 1000)
    assert cache.evict(KEY) is True
    assert cache.lookup(KEY) is None and StageCache(root).lookup(KEY) is None
    assert cache.entries() == [] and not cache.path(KEY).exists()
    assert cache.evict(KEY) is False
    assert _leftovers(cache.root) == []
    assert _assert_consistent(_publish(cache, b"b" * 1000)) == b"b" * 1000  # published again


def test_stage_cache_never_returns_an_entry_without_meta(tmp_path: Path, memory_url: str) -> None:
    local = StageCache(tmp_path / "cache")
    half = local.path(KEY)
    half.mkdir(parents=True)
    (half / "model.onnx").write_bytes(b"partial")
    tmp = half.parent / f".tmp-{KEY}-deadbeef"
    tmp.mkdir()
    (tmp / "model.onnx").write_bytes(b"x")
    (tmp / META).write_text(json.dumps({"kind": "onnx"}))
    assert local.lookup(KEY) is None and local.entries() == []

    # URL root: an uploaded writer folder without meta.json is not an entry either.
    fs, base = fsspec.core.url_to_fs(memory_url)
    fs.pipe_file(f"{base}/{KEY}/somewriter/model.onnx", b"partial")
    remote = StageCache(memory_url)
    assert remote.lookup(KEY) is None and remote.entries() == []


def test_stage_cache_url_ignores_a_folder_that_does_not_match_its_meta(
    memory_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _publish(StageCache(memory_url), _payload("good"))
    writer = entry.meta["writer"]
    fs, base = fsspec.core.url_to_fs(memory_url)
    fs.pipe_file(f"{base}/{KEY}/{writer}/model.onnx", b"corrupted")
    fresh = _other_node(memory_url, tmp_path / "fresh-node", monkeypatch)
    assert fresh.lookup(KEY) is None
    # A writer then replaces the broken entry with its own.
    data = _payload("repair")
    assert _assert_consistent(_publish(fresh, data)) == data
    third = _other_node(memory_url, tmp_path / "third-node", monkeypatch).lookup(KEY)
    assert _assert_consistent(third) == data


def test_stage_cache_url_root_serves_the_pipeline_on_another_node(
    workload: Any, memory_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autoopt import hardware
    from autoopt.pipeline import build
    from autoopt.recipe import Recipe
    from autoopt.resolve import make_step

    recipe = Recipe(
        pruning=make_step("pruning.structured", {"amount": 0.5, "recovery_steps": 0}),
        precision=make_step("precision.fp32"),
        backend=make_step("backend.onnxruntime"),
    )
    first = build(recipe, workload, StageCache(memory_url), hardware.current(), tmp_path)
    assert [e.hit for e in first.events] == [False, False]
    node = _other_node(memory_url, tmp_path / "node2", monkeypatch)
    second = build(recipe, workload, node, hardware.current(), tmp_path)
    assert [e.hit for e in second.events] == [True, True] and second.key == first.key
    assert second.path == node.path(first.key) and (second.path / "model.onnx").is_file()
