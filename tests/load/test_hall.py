"""deploy/hall.py: the app behind st.App's start-up hook, warm before its port opens.

A plain fresh server does its start-up work (torch, the model, the gallery's analyses) in the first
session, while the rest of a class waits behind it. The hall's entry point does it before uvicorn
binds the port, and then walks every page once per deep link on a private port (deploy/warm_walk.py),
so the first health check that answers already finds the caches full.
"""
from __future__ import annotations

import re

from tests.support.classroom import classroom
from tests.support.browser import app_server
from pages._ui import site
from pages._ui.site import sample_names


def test_the_hall_server_answers_only_once_warm_and_serves_the_app(tmp_path):
    log = tmp_path / "server.log"
    with app_server(script="deploy/hall.py", log=log, timeout_s=240) as base:
        said = log.read_text()  # everything printed before the port answered its first health check
        m = re.search(r"is warm after [\d.]+ s: (\d+) page modules imported, (\d+) analyses cached", said)
        assert m, said[-2000:]
        modules, analyses = int(m[1]), int(m[2])
        assert modules >= 20  # streamlit, vit_core's layers, the pages' helpers
        assert analyses >= len(sample_names())  # the gallery on the default model, before any visitor
        # every page once per deep link (each sample; the default view is one), through the app's own protocol
        m = re.search(r"rehearsed (\d+) page runs \((\d+) deep links\) in [\d.]+ s, (\d+) exceptions(.*)", said)
        assert m, said[-2000:]
        assert int(m[2]) == len(sample_names()) and int(m[1]) == int(m[2]) * len(site.PAGES)
        assert (int(m[3]), m[4].strip()) == (0, ""), m[0]
        r = classroom(tmp_path, "--url", base, "--students", "3", "--scenario", "walk", "--ramp", "0",
                      "--query", f"sample={sample_names()[-1]}", "--max-pages", "3", "--timeout", "120")  # the opening page + 3
    assert (r["finished"], r["failed_sessions"], r["exceptions"], r["errors"]) == (3, 0, 0, 0), r["exception_texts"]
    assert len(r["pages"]) == 4 and all(s["n"] == 3 for s in r["pages"].values())
