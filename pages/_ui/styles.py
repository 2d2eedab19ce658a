"""The CSS and script that lecture mode and every page add to Streamlit's own page.

``PRESENT_CSS`` and ``CLICKER_JS`` make the projector layout of presentation mode
(``present.lecture_chrome``); ``BASE_CSS`` goes on every page with the sidebar's heading.
"""
from __future__ import annotations

CSS_MARKER = "vit-present-mode"

PRESENT_CSS = f"""
<style id="{CSS_MARKER}">
/* {CSS_MARKER}: projector layout. Streamlit's chrome and the sidebar go away. */
header[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stMainMenu"],
[data-testid="stAppDeployButton"], [data-testid="stStatusWidget"], [data-testid="stDecoration"],
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"], footer {{ display: none !important; }}
/* Large type: Streamlit sizes almost everything in rem. */
html {{ font-size: 21px !important; }}
/* High contrast: pure black on white, no grey captions, thick focus outlines. */
.stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"] {{ background: #ffffff !important; color: #000000 !important; }}
[data-testid="stMainBlockContainer"] {{ max-width: 100% !important; padding: 0.6rem 2.2rem 3rem 2.2rem !important; }}
.stApp p, .stApp li, .stApp label, .stApp td, .stApp th {{ color: #000000 !important; }}
.stApp p, .stApp li {{ font-size: 1.12rem; line-height: 1.45; }}
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p {{ color: #111111 !important; opacity: 1 !important; font-size: 0.95rem !important; }}
[data-testid="stTable"] td, [data-testid="stTable"] th {{ font-size: 0.95rem !important; color: #000000 !important; }}
.stApp h1 {{ font-size: 2.3rem !important; font-weight: 800 !important; color: #000000 !important; padding-top: 0.2rem !important; }}
.stApp h2, .stApp h3 {{ font-weight: 750 !important; color: #000000 !important; }}
.stApp a {{ color: #0b3fb3 !important; text-decoration: underline !important; }}
[data-testid="stMetricValue"], [data-testid="stMetricValue"] p, [data-testid="stMetricValue"] div {{ font-size: 1.9rem !important; line-height: 1.2 !important; color: #000000 !important; font-weight: 700 !important; }}
[data-testid="stMetricLabel"] p {{ font-size: 1rem !important; color: #000000 !important; }}
.stApp button {{ border-width: 2px !important; border-color: #000000 !important; }}
.stApp button p {{ font-weight: 700 !important; }}
.stApp *:focus-visible {{ outline: 3px solid #0b3fb3 !important; }}
/* Plotly's axis labels, titles and legends in black (data labels keep their own colours). */
.js-plotly-plot .xtick text, .js-plotly-plot .ytick text, .js-plotly-plot .xtitle, .js-plotly-plot .ytitle,
.js-plotly-plot .gtitle, .js-plotly-plot .legendtext, .js-plotly-plot .cbaxis text {{ fill: #000000 !important; }}
/* The control bar stays on screen while a long page scrolls. */
/* Fixed rather than sticky: Streamlit wraps the container in a box of its own height. */
.st-key-vx_navbar {{ position: fixed; top: 0; left: 0; right: 0; z-index: 1000; background: #ffffff; padding: 0.25rem 2.2rem 0.35rem 2.2rem; border-bottom: 2px solid #000000; }}
[data-testid="stMainBlockContainer"] {{ padding-top: 4.6rem !important; }}
.st-key-vx_navbar button p {{ white-space: normal !important; overflow: visible !important; text-overflow: clip !important; line-height: 1.15; }}
/* A phone that followed the QR code: the slide, large; no clicker hints, QR or Exit. */
@media (max-width: 640px) {{
  html {{ font-size: 17px !important; }}
  [data-testid="stMainBlockContainer"] {{ padding: 4.2rem 0.7rem 2rem 0.7rem !important; }}
  .st-key-vx_navbar {{ padding: 0.2rem 0.5rem 0.3rem 0.5rem; }}
  .st-key-vx_navbar [data-testid="stColumn"] {{ min-width: 0 !important; }}
  .st-key-_present_qr, .st-key-_present_exit, .vx-keys {{ display: none !important; }}
  .st-key-vx_navbar [data-testid="stHorizontalBlock"] {{ flex-wrap: nowrap !important; gap: 0.3rem !important; }}
}}
</style>
"""

# A presenter's clicker sends PageDown / PageUp: scroll the slide, and move on only at its end.
# Streamlit's own button shortcuts would change page at once, so the keys are handled here.
CLICKER_JS = """
<script>
(function () {
  if (window.__vxClicker) return;
  window.__vxClicker = true;
  function scroller() {
    const cands = [document.querySelector('[data-testid="stMainBlockContainer"]'),
                   document.querySelector('[data-testid="stMain"]'),
                   document.querySelector('[data-testid="stAppViewContainer"]'),
                   document.scrollingElement];
    for (const el of cands) { if (el && el.scrollHeight - el.clientHeight > 2) return el; }
    return document.scrollingElement;
  }
  function press(key) {
    const b = document.querySelector('.st-key-' + key + ' button');
    if (b && !b.disabled) { b.click(); return true; }
    return false;
  }
  window.addEventListener('keydown', function (e) {
    if (!document.querySelector('.st-key-_present_next')) return;  // not in presentation mode
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    const el = scroller();
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
    const atTop = el.scrollTop <= 2;
    let handled = true;
    if (e.key === 'ArrowRight') press('_present_next');
    else if (e.key === 'ArrowLeft') press('_present_prev');
    else if (e.key === 'PageDown' || (e.key === ' ' && !e.shiftKey)) {
      if (atEnd) press('_present_next'); else el.scrollBy({top: el.clientHeight * 0.85});
    } else if (e.key === 'PageUp') {
      if (atTop) press('_present_prev'); else el.scrollBy({top: -el.clientHeight * 0.85});
    } else handled = false;
    if (handled) { e.preventDefault(); e.stopImmediatePropagation(); }
  }, true);
})();
</script>
"""

# On every page (drawn with the sidebar's heading): plotly's mode bar is hover-only on a mouse but
# always shown on touch, where it prints over figure titles; and no image may be wider than a phone's
# screen. No blank line inside: the markdown it rides in must keep it one HTML block.
BASE_CSS = """
<style>
@media (hover: none) { .js-plotly-plot .modebar-container { display: none !important; } }
[data-testid="stImage"] img, [data-testid="stImageContainer"] img { max-width: 100% !important; height: auto !important; }
[data-testid="stMainBlockContainer"] { overflow-x: hidden; }
</style>
"""
