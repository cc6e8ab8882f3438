"""The dashboard in a real browser: headless Chromium against a real sweep and edge cases.

Tests on the synthetic edge-case studies come first, while the seeding sweep still runs in the
background; the ones on the sweep wait for it. Screenshots go to a session folder (or
$AUTOOPT_SCREENSHOTS).
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

# The point of the Pareto chart farthest from its nearest neighbour (so hover and click cannot
# land on another trial), with its page coordinates. Traces render in data order.
ISOLATED_POINT = """() => {
  const gd = document.getElementById("pareto");
  const layers = gd.querySelectorAll(".scatterlayer .trace");
  const pts = [];
  gd.data.forEach((tr, i) => {
    if (tr.mode !== "markers") return;
    layers[i].querySelectorAll("path.point").forEach((el, j) => {
      const r = el.getBoundingClientRect();
      pts.push({n: tr.customdata[j], x: r.x + r.width / 2, y: r.y + r.height / 2,
                name: tr.name});
    });
  });
  let best = null;
  for (const p of pts) {
    const d = Math.min(...pts.filter((q) => q !== p).map((q) => Math.hypot(p.x - q.x, p.y - q.y)));
    if (p.name !== "baseline" && (!best || d > best.d)) best = {...p, d};
  }
  return best;
}"""


@pytest.fixture(scope="module", autouse=True)
def _start_seeding(seeded: Any) -> None:
    """Starts the real sweep before the first test, so it runs while edge cases are tested."""


def open_study(page: Any, server: Any, name: str, refresh: int | None = None) -> None:
    query = f"?refresh={refresh}" if refresh else ""
    page.goto(f"{server.url}/studies/{urllib.parse.quote(name)}{query}")
    page.wait_for_selector("#app:not([data-revision=''])", state="attached")
    page.wait_for_selector("#pareto .main-svg")
    page.wait_for_selector("#trials tbody tr")


def api_json(page: Any, server: Any, name: str) -> dict[str, Any]:
    return page.request.get(f"{server.url}/api/studies/{urllib.parse.quote(name)}").json()


def floor_line(page: Any) -> float | None:
    """The y of the dashed horizontal line the Pareto chart draws for the accuracy floor."""
    return page.evaluate("""() => {
      const line = (document.getElementById("pareto").layout.shapes || [])
        .find((s) => s.type === "line" && s.y0 === s.y1 && s.line.dash === "dash");
      return line ? line.y0 : null;
    }""")


def column(page: Any, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#trials tbody tr td:nth-child({index})", "els => els.map(e => e.textContent.trim())"
    )


def numbers(cells: list[str]) -> list[float]:
    return [float(c.replace("×", "").replace("−", "-")) for c in cells if c not in ("—", "")]


# ---- edge cases (synthetic studies) ---------------------------------------------------------
def test_studies_page_lists_every_study_with_target_counts_and_speedup(
    page: Any, server: Any
) -> None:
    page.goto(server.url + "/")
    rows = page.locator("#studies tbody tr")
    names = rows.evaluate_all("rs => rs.map(r => r.dataset.study)")
    assert {"empty", "all_failed", "none_feasible", "running", "mixed", "live"} <= set(names)
    mixed = page.locator("tr[data-study='mixed']")
    assert "GPU=1" in mixed.inner_text() and "digits_cnn" in mixed.inner_text()
    assert re.search(r"\d+\.\d\d×", mixed.inner_text())  # best feasible speedup
    assert "complete" in mixed.inner_text() and "rejected" in mixed.inner_text()
    assert page.locator("tr[data-study='running'] .pill.running").count() == 1
    assert "local" in page.locator("tr[data-study='empty']").inner_text()
    assert "no trials" in page.locator("tr[data-study='empty']").inner_text()
    assert "8 fail" in page.locator("tr[data-study='all_failed']").inner_text()
    page.locator("tr[data-study='mixed'] a").first.click()
    page.wait_for_url(re.compile(r"/studies/mixed$"))


@pytest.mark.parametrize(
    ("name", "notice", "unplotted"),
    [
        ("empty", "No trials yet", ""),
        ("all_failed", "All 8 trials failed", "8 failed"),
        ("none_feasible", "only the baseline is feasible", ""),
        ("running", "", "2 running"),
    ],
)
def test_study_page_renders_edge_case(
    page: Any, server: Any, name: str, notice: str, unplotted: str
) -> None:
    open_study(page, server, name)
    data = api_json(page, server, name)
    shown = page.locator("#notice")
    if notice:
        assert notice in shown.inner_text()
    else:
        assert shown.is_hidden()
    assert unplotted in page.locator("#unplotted").inner_text()
    rows = page.locator("#trials tbody tr[data-n]")
    assert rows.count() == data["n_trials"]
    unplotted_cats = ("failed", "rejected", "running", "queued", "repeat")
    measured = [t for t in data["trials"] if t["cat"] not in unplotted_cats]
    assert page.locator("#pareto").get_attribute("data-points") == str(len(measured))
    if name == "empty":
        assert "No trials yet" in page.locator("#trials tbody").inner_text()
        assert "No trials yet" in page.locator("#pareto").inner_text()
    if name == "all_failed":
        assert page.locator("#trials .reason").count() == 8
        assert "teacher checkpoint not found" in page.locator("#trials").inner_text()
        assert "none yet" in page.locator("#best").inner_text()
    if name == "none_feasible":
        assert floor_line(page) == pytest.approx(data["floor"])
        assert page.locator("#pareto .legend").text_content().count("infeasible") == 1
    if name == "running":
        assert "sweep running" in page.locator("#live").inner_text()
        assert page.locator("#trials tbody .pill.cat-running").count() == 2
        page.locator("#unplotted a.cat-running").first.click()
        page.wait_for_url(re.compile(r"/trials/\d+$"))
        assert "still running" in page.locator("main").inner_text()


def test_trial_table_marks_the_trial_timed_on_a_busy_host(page: Any, server: Any) -> None:
    open_study(page, server, "mixed")
    data = api_json(page, server, "mixed")
    (loaded,) = [t for t in data["trials"] if t["loaded"]]
    marker = page.locator("#trials tbody .pill.loaded")
    assert marker.count() == 1 and marker.inner_text() == "loaded 3.1"
    row = page.locator(f"#trials tbody tr[data-n='{loaded['n']}']")
    assert row.locator(".pill.loaded").get_attribute("title") == "loaded (load 3.1, cpu 62%)"


def test_trial_table_sorts_and_filters(page: Any, server: Any) -> None:
    open_study(page, server, "mixed")
    data = api_json(page, server, "mixed")
    p50 = page.locator("#trials th[data-key='p50']")
    p50.click()
    assert p50.get_attribute("aria-sort") == "ascending"
    ascending = numbers(column(page, 7))
    assert ascending == sorted(ascending) and len(ascending) > 5
    p50.click()
    assert p50.get_attribute("aria-sort") == "descending"
    assert numbers(column(page, 7)) == sorted(ascending, reverse=True)
    assert column(page, 7)[-1] == "—"  # unmeasured trials stay last in either direction

    state = "FAIL" if "FAIL" in data["counts"] else "PRUNED"  # rejected candidates: PRUNED
    page.select_option("select[name='state']", state)
    assert page.locator("#trials tbody tr[data-n]").count() == data["counts"][state]
    assert set(column(page, 3)) == {"failed" if state == "FAIL" else "rejected"}
    page.click("#reset-filters")

    page.select_option("select[data-family='pruning']", "structured")
    recipes = column(page, 4)
    pruning = data["families"].index("pruning")
    want = [t for t in data["trials"] if t["tech"][pruning] == "structured"]
    assert len(recipes) == len(want) > 0
    assert all("structured(" in r and "unstructured(" not in r for r in recipes)
    page.click("#reset-filters")

    page.select_option("select[name='metric']", "speedup")
    page.fill("input[name='min']", "2")
    speedups = numbers(column(page, 9))
    assert speedups and min(speedups) >= 2
    assert len(speedups) == sum(1 for t in data["trials"] if (t["speedup"] or 0) >= 2)
    assert f"{len(speedups)} of {data['n_trials']} shown" in page.inner_text("#shown")


def test_new_trial_appears_without_reload(page: Any, server: Any) -> None:
    import optuna

    from tests.synthetic_studies import add_finished_trial

    open_study(page, server, "live", refresh=300)
    page.evaluate("window.__sameDocument = true")
    points = int(page.locator("#pareto").get_attribute("data-points"))
    rows = page.locator("#trials tbody tr[data-n]").count()
    number = add_finished_trial(optuna.load_study(study_name="live", storage=server.storage))
    page.wait_for_selector(f"#trials tbody tr[data-n='{number}']", timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    assert page.locator("#trials tbody tr[data-n]").count() == rows + 1
    assert page.locator("#pareto").get_attribute("data-points") == str(points + 1)
    assert f"{rows + 1}" in page.inner_text("#counts")


def test_failed_trial_page_shows_reason_and_offers_no_export(page: Any, server: Any) -> None:
    data = api_json(page, server, "all_failed")
    failed = next(t for t in data["trials"] if t["state"] == "FAIL")
    page.goto(f"{server.url}/studies/all_failed/trials/{failed['n']}")
    assert failed["reason"][:40] in page.locator("[data-testid='failure']").inner_text()
    assert "No metrics" in page.locator("main").inner_text()
    # It has no model: an export command would only fail.
    assert page.locator("[data-testid='export']").count() == 0
    assert "Nothing to export: this trial failed at stage" in page.inner_text(
        "[data-testid='no-export']"
    )


def test_rejected_trial_page_says_rejected_and_shows_no_empty_rows(
    page: Any, server: Any, shots: Path
) -> None:
    data = api_json(page, server, "outliers")
    refused = next(t for t in data["trials"] if t["cat"] == "rejected" and t["stage"] == "check")
    page.goto(f"{server.url}/studies/outliers/trials/{refused['n']}")
    main = page.locator("main").inner_text()
    assert page.inner_text("[data-testid='category']") == "rejected"
    assert "Rejected at stage check" in page.inner_text("[data-testid='failure']")
    assert refused["reason"] in page.inner_text("[data-testid='failure']")
    assert page.locator("[data-testid='export']").count() == 0
    assert "Nothing to export: this candidate was rejected before anything was built" in main
    assert "Not measured, so no hardware was recorded" in main
    assert "{}" not in main and "failed" not in main.lower()
    page.screenshot(path=str(shots / "trial-rejected.png"), full_page=True)


def test_repeat_page_points_to_the_trial_that_measured_it(
    page: Any, server: Any, shots: Path
) -> None:
    data = api_json(page, server, "outliers")
    repeat = next(t for t in data["trials"] if t["cat"] == "repeat")
    first = repeat["repeat_of"]
    page.goto(f"{server.url}/studies/outliers/trials/{repeat['n']}")
    assert page.inner_text("[data-testid='category']") == f"repeat of #{first}"
    assert "feasible" not in page.inner_text("[data-testid='category']")
    notice = page.locator("[data-testid='repeat']")
    assert f"same candidate as trial #{first}" in notice.inner_text()
    assert page.inner_text("[data-testid='export']").startswith(
        f"autoopt export --study outliers --trial {first} --out "
    )
    assert f"(by trial #{first})" in page.locator("main").inner_text()
    page.screenshot(path=str(shots / "trial-repeat.png"), full_page=True)
    notice.locator("a").click()
    page.wait_for_url(re.compile(rf"/studies/outliers/trials/{first}$"))


def test_busy_host_trial_page_warns_about_load_noise(page: Any, server: Any) -> None:
    from autoopt import api

    record = api.load_study("outliers", server.storage)
    busy = next(t for t in record.trials if (t.hardware.get("load_avg_1m") or 0) > 2)
    page.goto(f"{server.url}/studies/outliers/trials/{busy.number}")
    warning = page.inner_text("[data-testid='loaded']")
    assert "Timed on a busy host (1-minute load average 20.60" in warning
    assert "40% of their CPU time" in warning
    quiet = next(t for t in record.front() if not t.is_baseline)
    page.goto(f"{server.url}/studies/outliers/trials/{quiet.number}")
    assert page.locator("[data-testid='loaded']").count() == 0


def test_chart_zooms_to_the_feasible_band_and_says_where_outliers_went(
    page: Any, server: Any, shots: Path
) -> None:
    open_study(page, server, "outliers")
    data = api_json(page, server, "outliers")
    collapsed = next(t for t in data["trials"] if t["cat"] != "repeat" and t["acc"] == 0.44)
    chart = page.locator("#pareto")
    low, high = (float(v) for v in chart.get_attribute("data-yrange").split(","))
    assert low > 0.9 and high > data["floor"] > low  # the floor and the band above it
    below = [int(n) for n in chart.get_attribute("data-below").split(",")]
    assert collapsed["n"] in below and below == data["view"]["below"]
    # Where they went: marked on the lower edge, and listed with their values.
    edge = page.evaluate(
        "() => document.getElementById('pareto').data.find((t) => t.name.startsWith('below'))"
    )
    assert sorted(edge["customdata"]) == sorted(below)
    listed = page.inner_text("#unplotted [data-testid='below']")
    assert f"#{collapsed['n']} 0.44" in listed and f"{len(below)} below" in listed
    # The front's points carry their trial numbers.
    front = page.evaluate(
        "() => document.getElementById('pareto').data.find((t) => t.name === 'Pareto front')"
    )
    numbers = sorted(t["n"] for t in data["trials"] if t["front"] and not t["base"])
    assert sorted(front["text"]) == sorted(f"#{n}" for n in numbers)
    assert "#" + str(numbers[0]) in chart.text_content()
    # Repeats are one point each (their first trial's), listed beside the chart.
    repeats = [t["n"] for t in data["trials"] if t["cat"] == "repeat"]
    assert repeats and f"{len(repeats)} repeat" in page.inner_text("#unplotted")
    assert int(chart.get_attribute("data-points")) == sum(
        t["cat"] not in ("failed", "rejected", "running", "queued", "repeat")
        for t in data["trials"]
    )
    contributions = page.inner_text("#contrib")
    assert "rejected)" in contributions  # refused candidates, not "failed" ones
    if "FAIL" not in data["counts"]:
        assert "failed)" not in contributions
    page.screenshot(path=str(shots / "study-outliers.png"), full_page=True)


# ---- the real sweep -------------------------------------------------------------------------
@pytest.fixture()
def sweep(server: Any) -> Any:
    server.seeded.wait_for_sweep()
    return server


def test_study_page_of_real_sweep_shows_front_floor_progress_and_table(
    page: Any, sweep: Any, shots: Path
) -> None:
    open_study(page, sweep, "sweep")
    data = api_json(page, sweep, "sweep")
    assert data["n_trials"] == 6 and data["baseline"]["n"] == 0
    assert page.locator("#trials tbody tr[data-n]").count() == 6
    chart = page.locator("#pareto")
    assert "baseline" in chart.locator(".legend").text_content()
    assert floor_line(page) == pytest.approx(data["floor"])
    assert f"floor {data['floor']:.4g}" in chart.inner_text()
    assert int(chart.get_attribute("data-points")) == sum(
        t["cat"] not in ("failed", "rejected", "running", "queued", "repeat")
        for t in data["trials"]
    )
    assert page.locator("#progress .main-svg").count() > 0
    contributions = page.inner_text("#contrib")
    assert "pruning" in contributions and "onnxruntime" in contributions
    assert "local" in page.inner_text(".facts")
    png = page.locator(".links a", has_text="pareto.png")
    assert page.request.get(sweep.url + png.get_attribute("href")).status == 200
    page.screenshot(path=str(shots / "study.png"), full_page=True)


def test_pareto_hover_shows_recipe_and_click_opens_that_trial(
    page: Any, sweep: Any, shots: Path
) -> None:
    open_study(page, sweep, "sweep")
    point = page.evaluate(ISOLATED_POINT)
    recipe = next(
        t["recipe"] for t in api_json(page, sweep, "sweep")["trials"] if t["n"] == point["n"]
    )
    page.mouse.move(point["x"], point["y"])
    hover = page.wait_for_selector("#pareto .hoverlayer .hovertext")
    assert f"#{point['n']}" in hover.text_content()
    assert recipe in hover.text_content()
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(re.compile(rf"/studies/sweep/trials/{point['n']}$"))
    main = page.locator("main").text_content().lower()
    assert recipe in page.inner_text("[data-testid='recipe']")
    for text in (
        "Metrics",
        "p50 latency",
        "Baseline (#0)",
        "Speedup vs baseline",
        "Stage lineage",
        "Measured on",
        "cpu_model",
        "versions.torch",
    ):
        assert text.lower() in main, text
    assert page.inner_text("[data-testid='export']").startswith(
        f"autoopt export --study sweep --trial {point['n']} --out "
    )
    page.screenshot(path=str(shots / "trial.png"), full_page=True)


def test_trial_page_shows_reused_stages_with_the_trial_that_built_them(
    page: Any, sweep: Any
) -> None:
    from autoopt import api

    record = api.load_study("sweep", sweep.storage)
    reused = [t for t in record.trials if any(s["hit"] for s in t.stages)]
    assert reused, "the seeded sweep measures one pruned model on two backends"
    t = reused[-1]
    page.goto(f"{sweep.url}/studies/sweep/trials/{t.number}")
    stages = page.inner_text("#stages")
    assert "reused" in stages
    for s in t.stages:
        assert s["stage"] in stages


def test_compare_two_trials_highlights_differences(page: Any, sweep: Any, shots: Path) -> None:
    open_study(page, sweep, "sweep")
    data = api_json(page, sweep, "sweep")
    other = next(
        t
        for t in data["trials"]
        if not t["base"] and t["recipe"].endswith("@ onnxruntime") and t["state"] == "COMPLETE"
    )
    page.check("#trials tbody tr[data-n='0'] input[type=checkbox]")
    page.check(f"#trials tbody tr[data-n='{other['n']}'] input[type=checkbox]")
    page.click("#compare-btn")
    page.wait_for_url(re.compile(rf"/compare\?trials=0,{other['n']}$"))
    table = page.locator("#compare")
    assert table.locator("thead th").count() == 3
    assert "differs" in table.locator("tr[data-label='backend']").get_attribute("class")
    assert "differs" not in (
        table.locator("tr[data-label='precision']").get_attribute("class") or ""
    )
    assert table.locator("tr[data-label='latency_p50_ms'] td.best").count() == 1
    page.screenshot(path=str(shots / "compare.png"), full_page=True)


def test_studies_page_screenshot_after_sweep(page: Any, sweep: Any, shots: Path) -> None:
    page.goto(sweep.url + "/")
    row = page.locator("tr[data-study='sweep']")
    assert "6 complete" in row.inner_text() or "complete" in row.inner_text()
    page.screenshot(path=str(shots / "studies.png"), full_page=True)
