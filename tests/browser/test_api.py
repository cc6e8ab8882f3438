"""The dashboard's routes without a browser (FastAPI's TestClient): JSON, read-only, files."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient

from autoopt.dashboard import create_app
from autoopt.dashboard._files import safe_artifact
from autoopt.dashboard._views import hypervolume
from tests.synthetic_studies import add_finished_trial, create_synthetic_study

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfab"
    "d40000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = tmp_path_factory.mktemp("dashboard_api")
    storage = f"sqlite:///{root}/study.db"
    create_synthetic_study(storage, "mixed", "normal", n_trials=14, seed=2, resources={"GPU": 1.0})
    create_synthetic_study(storage, "empty", "empty")
    results = root / "results"
    (results / "mixed").mkdir(parents=True)
    (results / "mixed" / "pareto.png").write_bytes(PNG)
    (results / "mixed" / "model.onnx").write_bytes(b"weights")
    (root / "secret.txt").write_text("outside the results directory")
    (results / "mixed" / "link.txt").symlink_to(root / "secret.txt")
    return {"root": root, "storage": storage, "results": results}


@pytest.fixture(scope="module")
def client(seeded: dict[str, Any]) -> Iterator[TestClient]:
    app = create_app(seeded["storage"], seeded["results"], warm=False)
    with TestClient(app) as c:
        yield c


def strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON: browsers reject it")

    return json.loads(text, parse_constant=refuse)


def test_studies_json_lists_studies_with_target_counts_and_speedup(client: TestClient) -> None:
    body = client.get("/api/studies").json()
    rows = {r["name"]: r for r in body["studies"]}
    assert set(rows) == {"mixed", "empty"} and body["error"] is None
    assert rows["mixed"]["target"] == "gpu (GPU=1)" and rows["empty"]["target"] == "local"
    assert rows["mixed"]["n_trials"] == 14 and rows["mixed"]["best_speedup"] > 1
    assert rows["empty"]["counts"] == {} and rows["empty"]["best_speedup"] is None


def test_study_json_has_trials_progress_contributions_and_no_nan(client: TestClient) -> None:
    res = client.get("/api/studies/mixed")
    data = strict_json(res.text)
    assert res.headers["content-type"] == "application/json"
    assert data["n_trials"] == len(data["trials"]) == 14
    assert data["floor"] == pytest.approx(0.985 - 0.01)
    assert data["baseline"]["n"] == 0
    cats = {t["cat"] for t in data["trials"]}
    assert {"baseline", "front"} <= cats and cats & {"failed", "rejected"}
    progress = data["progress"]
    assert len(progress["hypervolume"]) == 14
    hv = [v for v in progress["hypervolume"] if v is not None]
    assert hv == sorted(hv) and hv[-1] > 0  # hypervolume never decreases
    families = {c["family"] for c in data["contributions"]}
    assert {"pruning", "backend"} <= families
    # The synthetic study has one trial whose peak memory is NaN: it must arrive as null.
    nan = [
        t
        for t in data["trials"]
        if t["state"] == "COMPLETE"
        and strict_json(client.get(f"/api/studies/mixed/trials/{t['n']}").text)["metrics"][
            "peak_memory_mb"
        ]
        is None
    ]
    assert len(nan) == 1
    assert client.get(f"/studies/mixed/trials/{nan[0]['n']}").status_code == 200


def test_study_json_is_304_until_a_trial_arrives(client: TestClient, seeded: dict) -> None:
    first = client.get("/api/studies/mixed")
    etag = first.headers["etag"]
    assert client.get("/api/studies/mixed", headers={"If-None-Match": etag}).status_code == 304
    number = add_finished_trial(optuna.load_study(study_name="mixed", storage=seeded["storage"]))
    res = client.get("/api/studies/mixed", headers={"If-None-Match": etag})
    assert res.status_code == 200 and res.headers["etag"] != etag
    assert res.json()["trials"][-1]["n"] == number


def test_unknown_study_or_trial_is_404(client: TestClient) -> None:
    assert client.get("/api/studies/nope").status_code == 404
    page = client.get("/studies/nope")
    assert page.status_code == 404 and "mixed" in page.text  # the message names what exists
    assert client.get("/studies/mixed/trials/999").status_code == 404
    assert client.get("/api/studies/mixed/trials/999").status_code == 404


def test_trial_page_shows_recipe_metrics_ratios_and_export_command(client: TestClient) -> None:
    data = client.get("/api/studies/mixed").json()
    t = next(t for t in data["trials"] if t["cat"] == "front")
    html = client.get(f"/studies/mixed/trials/{t['n']}").text
    for text in (
        "Recipe",
        "Metrics",
        "Speedup vs baseline",
        "Stage lineage",
        "Measured on",
        "Synthetic CPU",
        f"autoopt export --study mixed --trial {t['n']} --out",
    ):
        assert text in html, text
    failed = next(t for t in data["trials"] if t["cat"] in ("failed", "rejected"))
    html = client.get(f"/studies/mixed/trials/{failed['n']}").text
    assert failed["reason"][:30] in html


def test_trial_pages_mark_the_trial_timed_on_a_busy_host_and_show_the_paired_range(
    client: TestClient,
) -> None:
    data = client.get("/api/studies/mixed").json()
    loaded = [t for t in data["trials"] if t["loaded"]]
    assert len(loaded) == 1 and loaded[0]["load"] == 3.1  # the table's marker and load
    html = client.get(f"/studies/mixed/trials/{loaded[0]['n']}").text
    assert 'data-testid="loaded"' in html and "load average 3.10 on 2 logical cores" in html
    assert "the timing threads got 62% of their CPU time" in html
    assert "paired with the baseline; rounds" in html
    quiet = next(t for t in data["trials"] if t["cat"] == "front" and not t["loaded"])
    html = client.get(f"/studies/mixed/trials/{quiet['n']}").text
    assert 'data-testid="loaded"' not in html and "load 0.50, cpu share 99%" in html


def test_compare_page_marks_rows_that_differ(client: TestClient) -> None:
    html = client.get("/studies/mixed/compare?trials=0,2,3").text
    assert html.count('<tr class="differs"') >= 3
    assert "#0" in html and "#3" in html
    assert "No trial 999" in client.get("/studies/mixed/compare?trials=0,999").text


def test_no_route_writes_post_put_patch_delete_are_refused(
    client: TestClient, seeded: dict
) -> None:
    app = client.app
    for route in app.routes:
        methods = getattr(route, "methods", None)
        assert methods is None or methods <= {"GET", "HEAD"}, (route.path, methods)
    before = [
        (s, len(optuna.load_study(study_name=s, storage=seeded["storage"]).trials))
        for s in optuna.get_all_study_names(seeded["storage"])
    ]
    urls = [
        "/",
        "/api/studies",
        "/studies/mixed",
        "/api/studies/mixed",
        "/studies/mixed/trials/1",
        "/api/studies/mixed/trials/1",
        "/studies/mixed/compare?trials=0,1",
        "/results/mixed/pareto.png",
        "/static/dashboard.css",
        "/vendor/plotly.min.js",
    ]
    for url in urls:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            res = client.request(method, url, json={"state": "FAIL"})
            assert res.status_code == 405, (method, url, res.status_code)
    after = [
        (s, len(optuna.load_study(study_name=s, storage=seeded["storage"]).trials))
        for s in optuna.get_all_study_names(seeded["storage"])
    ]
    assert after == before


@pytest.mark.parametrize(
    "url",
    [
        "/results/..%2Fsecret.txt",
        "/results/%2e%2e/secret.txt",
        "/results/mixed/%2e%2e/%2e%2e/secret.txt",
        "/results/%2Fetc%2Fpasswd",
        "/results//etc/passwd",
        "/results/mixed/link.txt",  # a symlink pointing out of the directory
        "/results/mixed/model.onnx",  # not a table or a plot
        "/results/mixed/..%5C..%5Csecret.txt",
        "/results/mixed",
    ],
)
def test_result_files_cannot_escape_results_dir(client: TestClient, url: str) -> None:
    res = client.get(url)
    assert res.status_code == 404, res.text
    assert "outside the results" not in res.text


def test_result_files_serves_plots_and_resolves_paths_safely(
    client: TestClient, seeded: dict
) -> None:
    res = client.get("/results/mixed/pareto.png")
    assert res.status_code == 200 and res.content == PNG
    root: Path = seeded["results"]
    assert safe_artifact(root, "mixed/pareto.png") == (root / "mixed" / "pareto.png").resolve()
    for bad in (
        "../secret.txt",
        "mixed/../../secret.txt",
        str(seeded["root"] / "secret.txt"),
        "/etc/passwd",
        "mixed\\..\\..\\secret.txt",
        "C:/x.png",
        "mixed/link.txt",
    ):
        assert safe_artifact(root, bad) is None, bad


def test_pages_use_only_local_assets(client: TestClient) -> None:
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    for url in ("/", "/studies/mixed", "/studies/mixed/trials/0", "/studies/empty"):
        res = client.get(url)
        assert res.status_code == 200, url
        assert "http://" not in res.text.split("<main>")[0] and "https://" not in res.text
        assert "default-src 'self'" in res.headers["content-security-policy"]


def test_hypervolume_matches_known_volumes() -> None:
    assert hypervolume([]) == 0
    assert hypervolume([[1.0, 1.0]]) == 1
    assert hypervolume([[2.0, 1.0], [1.0, 2.0]]) == 3
    assert hypervolume([[2.0, 1.0], [1.0, 2.0], [0.5, 0.5]]) == 3  # dominated point adds 0
    assert hypervolume([[1.0, 1.0, 1.0], [2.0, 0.5, 0.5]]) == pytest.approx(1.25)
    assert hypervolume([[1.0, -1.0]]) == 0  # worse than the reference on one objective


def test_cli_dashboard_binds_to_localhost_by_default(
    monkeypatch: pytest.MonkeyPatch, seeded: dict
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from autoopt.cli import app

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda web, **kw: calls.append(kw))
    result = CliRunner().invoke(
        app, ["dashboard", "--storage", seeded["storage"], "--optuna-port", "0"]
    )
    assert result.exit_code == 0, result.output
    assert calls == [{"host": "127.0.0.1", "port": 8080, "log_level": "warning"}]


def test_optuna_dashboard_runs_beside_and_cannot_write(seeded: dict) -> None:
    from autoopt.dashboard import optuna_dashboard
    from autoopt.dashboard._optuna import ReadOnlyStorage

    readonly = ReadOnlyStorage(optuna.storages.get_storage(seeded["storage"]))
    assert "mixed" in [s.study_name for s in readonly.get_all_studies()]
    with pytest.raises(optuna.exceptions.StorageInternalError, match="read-only"):
        readonly.delete_study(readonly.get_study_id_from_name("mixed"))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with optuna_dashboard(seeded["storage"], "127.0.0.1", port) as url:
        assert url is not None
        with urllib.request.urlopen(f"{url}/api/studies", timeout=10) as res:
            names = [s["study_name"] for s in json.load(res)["study_summaries"]]
        assert "mixed" in names
        study_id = readonly.get_study_id_from_name("mixed")
        request = urllib.request.Request(f"{url}/api/studies/{study_id}", method="DELETE")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=10)
    assert "mixed" in optuna.get_all_study_names(seeded["storage"])
