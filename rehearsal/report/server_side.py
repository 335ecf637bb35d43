"""The report's client-and-server panel: each request type's latency as we measured it beside the system's own.

For one stage, from ``summary.json`` only (`rehearsal.results.server_latency`):
per request type the client's p50/p95/p99 and the systems' own for the same
requests (their ``GET /api/timings``), and the gap (client − server) at p95;
p95 of both and the gap over time; what the server's time covers; the routes
and request names that matched nothing. When the client's p95 is mostly the
harness's own (over both bounds of `rehearsal.results.server_latency`) the
panel says so first, as the page says a starved harness; a gate marked for
it carries a sign in the gates table (`harness_flag`). A real target without
``/api/timings`` (or a run from before server timings) reads "server side
unknown", never 0.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
from matplotlib.axes import Axes

from ..shared.formats import millis, number, percent
from . import charts
from .data import StageData
from .style import figure
from .text import LANGS, TEXT

#: This panel's words: key -> (Vietnamese, English).
_WORDS: dict[str, tuple[str, str]] = {
    "title": ("Độ trễ: phía harness và phía hệ thống", "Latency: the harness's side and the system's"),
    "unknown": (("Phía hệ thống chưa rõ: hệ thống không cung cấp số đo thời gian của chính nó (/api/timings)."),
                "Server side unknown: the system gives no timings of its own (/api/timings)."),
    "mostly": (("Độ trễ phần lớn là của chính harness: p95 phía harness {client} ms, phía hệ thống {server} ms "
                "cho cùng các yêu cầu (chênh {gap} ms, {share}; ngưỡng: trên {bound} ms và trên {bound_share})."),
               ("Latency mostly the harness's own: client p95 {client} ms, server p95 {server} ms of the same "
                "requests (gap {gap} ms, {share}; bound: over {bound} ms and over {bound_share}).")),
    "small": (("Phần của harness trong p95: {gap} ms ({share}); cảnh báo khi trên {bound} ms và trên "
               "{bound_share}."),
              ("The harness's part of p95: {gap} ms ({share}); said when over {bound} ms and over {bound_share}.")),
    "covers": ("Thời gian phía hệ thống: {covers}", "Server time: {covers}"),
    "request": ("Loại yêu cầu", "Request type"),
    "client": ("harness", "client"),
    "server": ("hệ thống", "server"),
    "gap": ("chênh p95", "p95 gap"),
    "over_time": ("p95 phía harness và phía hệ thống, và phần chênh, theo thời gian",
                  "Client and server p95, and the gap, over time"),
    "gap_line": ("chênh (harness − hệ thống)", "gap (client − server)"),
    "unmatched": ("Không khớp: {routes} route của hệ thống, {names} loại yêu cầu",
                  "Not matched: {routes} system routes, {names} request types"),
    "harness_gate": ("phần lớn là thời gian của harness", "mostly the harness's own time"),
}


def _ms(x: float | None) -> str:
    """Milliseconds as a server's sub-millisecond times need them: 0.31 ms, 12.4 ms, 1,234 ms."""
    if x is None or x >= 100:
        return millis(x)
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


#: What the reference systems say their timing covers (``/api/timings``' ``covers``), in Vietnamese;
#: a real system's own words are shown as it gives them.
COVERS_VI = {
    ("from the request's arrival (the kernel's receive stamp of its head, so its wait in a busy portal's socket, "
     "or in the accept queue once it has arrived, is in; where there is no stamp, from its head read) to the "
     "answer's last write handed to the kernel; not the wait for a connection's next request, not the network"):
    ("từ lúc yêu cầu đến (dấu thời gian nhận của nhân hệ điều hành cho phần đầu yêu cầu, nên thời gian chờ trong "
     "socket của cổng đang bận, hoặc trong hàng đợi accept khi yêu cầu đã đến, đều được tính; nếu không có dấu, từ "
     "lúc đọc xong phần đầu) đến khi lần ghi cuối của câu trả lời được giao cho nhân hệ điều hành; không gồm lúc một "
     "kết nối chờ yêu cầu kế tiếp, không gồm mạng"),
}


def _words(t: dict[str, str]) -> dict[str, str]:
    """This panel's words in the page's language (the page hands over its `TEXT` table)."""
    lang = next((lang for lang in LANGS if TEXT[lang].get("title") == t.get("title")), LANGS[0])
    i = LANGS.index(lang)
    return {key: pair[i] for key, pair in _WORDS.items()}


def harness_flag(gate: dict[str, Any], t: dict[str, str]) -> str:
    """The gates table's sign for a gate judged on a span that is mostly the harness's own ("" if not)."""
    if not gate.get("harness_ms"):
        return ""
    return f" <span title='{html.escape(_words(t)['harness_gate'])}' data-kpi='harness-gate'>⚖</span>"


def gap_chart(server: dict[str, Any], data: StageData, scale: float, labels: dict[str, str]) -> str:
    """Client p95, server p95 and their gap per interval (ms), over simulated minutes."""
    def draw(ax: Axes) -> bool:
        series = pd.DataFrame(server.get("series") or [])
        if series.empty or "server_p95_ms" not in series or series["server_p95_ms"].isna().all():
            return False
        x = data.rel(series["t"]) * scale / 60.0
        ax.plot(x, series["client_p95_ms"], color=charts.BLUE, marker=".", label=f"p95 {labels['client']}")
        ax.plot(x, series["server_p95_ms"], color=charts.GREEN, marker=".", label=f"p95 {labels['server']}")
        ax.fill_between(x, pd.to_numeric(series["gap_p95_ms"], errors="coerce").fillna(0).clip(lower=0),
                        color=charts.ORANGE, alpha=0.3, step="mid", label=labels["gap_line"])
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        return True
    return charts._time_chart(data, scale, labels, draw, height=2.6)


def _table(stage: dict[str, Any], server: dict[str, Any], w: dict[str, str]) -> str:
    e = html.escape
    rows = []
    for name, c in sorted((stage.get("requests") or {}).items(), key=lambda x: -int(x[1].get("count") or 0)):
        s = (server.get("by_name") or {}).get(name) or {}
        gap = c.get("p95_ms") - s["p95_ms"] if s.get("p95_ms") is not None and c.get("p95_ms") is not None else None
        cells = [number(c.get("count")), _ms(c.get("p50_ms")), _ms(c.get("p95_ms")), _ms(c.get("p99_ms")),
                 number(s.get("count")), _ms(s.get("p50_ms")), _ms(s.get("p95_ms")), _ms(s.get("p99_ms")), _ms(gap)]
        title = e(", ".join(s.get("routes") or []))
        rows.append(f"<tr><td title='{title}'>{e(name)}</td>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    head = (f"<tr><th rowspan='2'>{w['request']}</th><th colspan='4'>{w['client']}</th>"
            f"<th colspan='4'>{w['server']}</th><th rowspan='2'>{w['gap']}</th></tr>"
            "<tr>" + "<th>n</th><th>p50</th><th>p95</th><th>p99</th>" * 2 + "</tr>")
    return f"<div class='wrap'><table data-kpi='server-latency'>{head}{''.join(rows)}</table></div>"


def server_panel(stage: dict[str, Any], data: StageData | None, t: dict[str, str], scale: float, draw: bool) -> str:
    """The stage's client-and-server panel (HTML); "server side unknown" when the systems gave no timings."""
    e = html.escape
    w = _words(t)
    server = stage.get("server_latency")
    out = [f"<h3>{e(w['title'])}</h3><div data-kpi='server-side'>"]
    if not isinstance(server, dict) or not server.get("known"):
        reason = (server or {}).get("unknown") if isinstance(server, dict) else None
        out.append(f"<p class='muted' data-kpi='server-unknown'>{e(w['unknown'])}"
                   + (f" <small>({e(str(reason))})</small>" if reason else "") + "</p></div>")
        return "".join(out)
    g = server.get("generator") or {}
    words = _share_words(g)
    if g.get("over"):
        out.append(f"<p class='fail' data-kpi='harness-share'>{e(w['mostly'].format(**words))}</p>")
    elif g.get("gap_p95_ms") is not None:
        out.append(f"<p class='muted' data-kpi='harness-share'>{e(w['small'].format(**words))}</p>")
    if server.get("covers"):
        covers = server["covers"]
        if w["covers"].startswith("Thời gian"):  # the reference systems' own words have a Vietnamese rendering
            covers = COVERS_VI.get(covers, covers)
        out.append(f"<p class='muted'>{e(w['covers'].format(covers=covers))}</p>")
    out.append(_table(stage, server, w))
    if draw and data is not None:
        labels = {**t, **w}
        out.append("<div class='charts'>" + figure(gap_chart(server, data, scale, labels), w["over_time"]) + "</div>")
    routes, names = server.get("unmatched_routes") or [], server.get("unmatched_names") or []
    if routes or names:
        listed = "".join(f"<li><code>{e(x)}</code></li>" for x in [*names, *routes])
        out.append(f"<details><summary>{e(w['unmatched'].format(routes=len(routes), names=len(names)))}</summary>"
                   f"<ul class='muted'>{listed}</ul></details>")
    out.append("</div>")
    return "".join(out)



def _share_words(g: dict[str, Any]) -> dict[str, str]:
    def ms(x: Any) -> str:
        return "–" if x is None else f"{float(x):,.1f}"
    return {"client": ms(g.get("client_p95_ms")), "server": ms(g.get("server_p95_ms")), "gap": ms(g.get("gap_p95_ms")),
            "share": percent(g.get("share")), "bound": number(g.get("bound_gap_ms")),
            "bound_share": f"{float(g.get('bound_share') or 0):.0%}"}


def harness_banner(stages: list[dict[str, Any]], t: dict[str, str]) -> str:
    """Under the verdict: each stage whose client p95 is mostly the harness's own, said ("" if none)."""
    w = _words(t)
    said = [f"{s.get('name')}: " + w["mostly"].format(**_share_words(g)) for s in stages
            for g in [(s.get("server_latency") or {}).get("generator") or {}] if g.get("over")]
    if not said:
        return ""
    return (f"<div class='banner' style='background:#9a6700' data-kpi='harness-run'><b>⚖</b>"
            f"<span>{html.escape(' · '.join(said))}</span></div>")
