"""bench/classroom.py against real servers it starts itself: a small class through the browser
protocol (HTTP GET, websocket, rerun back-messages, uploads), compared with the trivial app.

A few students only: the point is that the tool sees every page of the app, times them and counts
what went wrong, so that bigger classes (run by hand, see the tool's --help) can be trusted.
"""
from __future__ import annotations

from pathlib import Path

from tests.support.classroom import classroom

ROOT = Path(__file__).resolve().parents[2]
TRIVIAL = ROOT / "bench" / "trivial_app.py"


def app_pages() -> list[str] | None:
    """The url paths app.py registers, when the page list can be imported (it moves with refactors)."""
    for module in ("pages._ui.site", "pages._common"):
        try:
            pages = __import__(module, fromlist=["PAGES"]).PAGES
        except (ImportError, AttributeError):
            continue
        return [url for path, _title, url, _icon in pages if (ROOT / path).exists()]
    return None


def test_a_class_walks_every_page_and_is_compared_with_the_trivial_app(tmp_path):
    students = 3
    r = classroom(tmp_path, "--app", "app.py", "--students", str(students), "--scenario", "walk",
                  "--baseline", "--timeout", "180")  # ~40 s on two idle cores; slack for busy ones
    assert (r["students"], r["finished"], r["failed_sessions"]) == (students, students, 0), r["failures"]
    listed = [p["url_path"] for p in r["page_list"]]
    why = r["exception_texts"][:3]  # app.py failing before st.navigation shows as a wrong page list
    assert len(listed) >= 2 and sorted(r["pages"]) == sorted(listed), (listed, why)
    expected = app_pages()
    if expected is not None:  # the default page is served at "" rather than its own url path
        assert len(listed) == len(expected) and set(listed) - {""} <= set(expected), (listed, expected, why)
    for path, s in r["pages"].items():
        assert s["n"] == students, (path, s)
        assert 0 < s["p50"] <= s["p95"] <= s["max"], (path, s)
    assert r["open"]["n"] == students and r["open"]["p50"] > 0
    assert r["exceptions"] == 0, r["exception_texts"]
    assert r["reconnections"] == 0 and r["upload_failures"] == 0
    assert r["peak_rss_mb"] > 100 and r["after_rss_mb"] > 0  # the app's own server, sampled
    b = r["baseline"]
    assert b is not None and len(b["page_list"]) == len(listed)
    assert b["finished"] == students and b["exceptions"] == 0
    assert all(s["n"] == students for s in b["pages"].values()) and len(b["pages"]) == len(listed)
    for key in ("ratio_median_page", "ratio_wall"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, (key, r[key])


def test_an_exception_in_a_page_is_counted_with_its_text(tmp_path):
    r = classroom(tmp_path, "--app", str(TRIVIAL), "--students", "2", "--scenario", "walk", "--timeout", "60",
                  env={"TRIVIAL_APP_PAGES": "3", "TRIVIAL_APP_RAISE": "2"})
    assert r["finished"] == 2 and r["failed_sessions"] == 0  # an exception ends the run, not the session
    assert [p["url_path"] for p in r["page_list"]] == ["", "p2", "p3"]
    assert all(s["n"] == 2 for s in r["pages"].values()) and len(r["pages"]) == 3
    assert r["exceptions"] == 2
    assert r["exception_texts"] == ["[/p2] ValueError: trivial page 2 raises on purpose"]


def test_a_page_that_never_finishes_in_time_fails_that_student_only_with_a_page_timeout(tmp_path):
    r = classroom(tmp_path, "--app", str(TRIVIAL), "--students", "2", "--scenario", "walk", "--timeout", "60",
                  "--page-timeout", "1.5", env={"TRIVIAL_APP_PAGES": "3", "TRIVIAL_APP_SLOW": "2:4"})
    assert r["finished"] == 0 and r["failed_sessions"] == 2  # page 2 takes 4 s: both give up there
    assert r["failures"] == [["PageTimeout: [/p2] no script_finished within 1.5 s", 2]], r["failures"]
    assert r["pages"][""]["n"] == 2 and "p3" not in r["pages"]  # the first page was timed, the third not reached
    assert r["client_loop"] in ("uvloop", "asyncio")


def test_uploads_go_through_the_uploader_widget(tmp_path):
    r = classroom(tmp_path, "--app", str(TRIVIAL), "--students", "2", "--scenario", "upload", "--timeout", "60",
                  env={"TRIVIAL_APP_PAGES": "2"})
    assert r["finished"] == 2 and r["upload_failures"] == 0 and not r["warnings"], r
    assert r["upload"]["n"] == 2 and r["upload"]["p50"] > 0
    assert all(s["n"] == 2 for s in r["pages"].values()) and len(r["pages"]) == 2


def test_thirty_first_sessions_at_once_on_a_fresh_server_see_no_exception(tmp_path):
    """The start-up race: a fresh server, 30 students arriving in the same second, each drawing
    figures on their first pages (plotly's lazy pandas import used to race between them)."""
    r = classroom(tmp_path, "--app", "app.py", "--students", "30", "--scenario", "walk", "--ramp", "0",
                  "--page", "prediction", "--max-pages", "2", "--no-media", "--timeout", "300",
                  env={"VIT_WARMUP": "0"})  # no head start: the race must not happen anyway
    assert (r["finished"], r["failed_sessions"]) == (30, 0), r["failures"]
    assert r["exceptions"] == 0 and r["errors"] == 0, r["exception_texts"] + r.get("error_texts", [])
