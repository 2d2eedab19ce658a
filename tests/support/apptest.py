"""AppTest helpers shared by the page suites: run a page, rerun it, and read what it showed."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from streamlit.testing.v1 import AppTest

from pages._ui import cache
from pages._ui.site import SAMPLES
from pages._ui.widgets import EXPORTS_LABEL
from vit_core.io import images

ROOT = Path(__file__).resolve().parents[2]


def run(page: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=90)
    at.query_params.update(query)
    return rerun(at)


def rerun(at_or_widget) -> AppTest:
    """Run the app again (after a widget's set_value, pass the widget) and check for tracebacks."""
    at = at_or_widget.run()  # a widget's run() reruns its AppTest and returns it
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest):
    """The Analysis and the loaded model the page showed (the same cache entries)."""
    spec, name = at.selectbox(key="model").value, at.selectbox(key="sample").value
    data = (SAMPLES / name).read_bytes()
    return cache.get_analysis(spec, images.image_sha256(data), data), cache.get_model(spec)


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    """Switch the sidebar to Upload and send ``data`` as the file ``name``, as a student does."""
    at.radio(key="source").set_value("Upload")
    rerun(at)
    at.sidebar.file_uploader[0].set_value((name, data, "image/png"))
    return rerun(at)


def square_png(color) -> bytes:
    """A 300 x 200 PNG upload: a coloured square on white."""
    buf = io.BytesIO()
    img = Image.new("RGB", (300, 200), "white")
    img.paste(Image.new("RGB", (120, 120), color), (90, 40))
    img.save(buf, format="PNG")
    return buf.getvalue()


def _popovers(node):
    for child in getattr(node, "children", {}).values():
        if getattr(child, "type", "") == "popover" and child.proto.popover.label == EXPORTS_LABEL:
            yield child
        yield from _popovers(child)


def open_all(at: AppTest) -> AppTest:
    """Opens every "Download" popover (widgets.exports), as a student's click does (they draw only while open)."""
    pops = data_and_code(at)
    assert pops and all(not p.proto.popover.open and not p.children for p in pops)  # closed: empty
    for pop in pops:
        at.session_state[pop.proto.popover.id.split("-", 2)[2]] = True
    return rerun(at)


def data_and_code(at: AppTest) -> list:
    """Every "Download" popover of the page (``widgets.exports``), wherever it is nested."""
    return list(_popovers(at._tree))


def page_title(at: AppTest) -> str:
    """The page's title: header() draws it as the first line ("# ...") of its introduction."""
    first = next(m.value for m in at.main.markdown if m.value.startswith("# "))
    return first.splitlines()[0][2:]
