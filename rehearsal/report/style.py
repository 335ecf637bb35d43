"""The report's style: one small stylesheet, inline in the page (no network, opens from disk), and the two
HTML pieces every panel draws with (a KPI tile, a captioned chart)."""

import html

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:0;padding:12px;color:#1b1f23;
max-width:1180px;overflow-wrap:anywhere}
h1{font-size:1.35rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .4rem;border-top:2px solid #d0d7de;padding-top:.8rem}
h3{font-size:1rem;margin:1.1rem 0 .4rem}
.banner{display:flex;flex-wrap:wrap;align-items:center;gap:.6rem;padding:.6rem .8rem;border-radius:.4rem;color:#fff}
.banner b{font-size:1.6rem}.banner span{opacity:.95}
.verdict{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:700;font-size:.9em}
.GO{background:#1a7f37}.NO-GO{background:#cf222e}.INCOMPLETE{background:#9a6700}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:.5rem}
.tile{border:1px solid #d0d7de;border-left:5px solid #6e7781;border-radius:.4rem;padding:.45rem .6rem}
.tile.ok{border-left-color:#1a7f37}.tile.bad{border-left-color:#cf222e}
.tile .k{font-size:.8rem;color:#57606a}.tile b{display:block;font-size:1.3rem}.tile .t{font-size:.75rem;color:#57606a}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid #d0d7de;padding:.25rem .4rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;white-space:normal}
td:first-child{min-width:9rem}[data-kpi=sessions_by_system] b{font-size:1rem}td span.muted{white-space:normal;overflow-wrap:anywhere}
.wrap{overflow-x:auto;max-width:100%}
.fail{color:#cf222e;font-weight:600}.pass{color:#1a7f37}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:.6rem}
figure{margin:0}figure img{width:100%;height:auto;display:block}figcaption{font-size:.85rem;font-weight:600;margin:.2rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(30px,1fr));gap:3px;margin-bottom:.6rem}
.cell{aspect-ratio:1;border-radius:3px;font-size:9px;line-height:1;display:flex;align-items:center;justify-content:center;
color:#fff;overflow:hidden}
.c0{background:#1a7f37}.c1{background:#d97706}.c2{background:#cf222e}.c3{background:#d0d7de;color:#57606a}
.c4{background:#f6f8fa;color:#afb8c1;border:1px dashed #d0d7de}
.cell.wide,.legend i.wide{background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.38) 0 1.5px,
transparent 1.5px 5px);outline:2px solid #1b1f23;outline-offset:-2px;text-shadow:0 0 2px #000,0 0 1px #000}
.c3.wide,.c4.wide{outline-color:#57606a}
.few{border:1px solid #9a6700;border-left:5px solid #9a6700;border-radius:.4rem;padding:.4rem .6rem;margin:.5rem 0;
background:#fff8c5}.few ul{margin:.2rem 0 0;padding-left:1.2rem;font-size:.88rem}.ci{white-space:nowrap}
.legend{font-size:.8rem;color:#57606a}.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;
vertical-align:middle;margin:0 .2rem 0 .5rem}
details summary{cursor:pointer;font-weight:600;margin:.6rem 0}
.muted{color:#57606a;font-size:.85rem}
.narrow{max-width:760px}
"""


def tile(key: str, label: str, value: str, target: str = "", state: str = "") -> str:
    """A KPI tile: its label, its value, the target under it; `state` ``ok`` / ``bad`` colours its edge."""
    e = html.escape
    return (f"<div class='tile {state}' data-kpi='{e(key)}'><div class='k'>{e(label)}</div><b>{e(value)}</b>"
            f"<div class='t'>{e(target)}</div></div>")


def figure(img: str, caption: str) -> str:
    """A chart (a PNG data URI) with its caption."""
    e = html.escape
    return f"<figure><figcaption>{e(caption)}</figcaption><img alt='{e(caption)}' src='{img}'></figure>"
