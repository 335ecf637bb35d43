"""`rehearse dashboard RUN_DIR`: the live view of a run, served from its run directory.

A small HTTP server (standard library, loopback by default) with one page
that asks ``/api/live`` for fresh figures every 3 seconds and redraws the
headline KPIs and the 168-unit grid. It reads only the run directory, so it
works during the run (from the files the run appends to: the stage's
``timeseries.jsonl`` and the ledger) and after it (from ``summary.json``),
and it can be started and stopped at any time without touching the run.

For a stage that has finished, every figure is the one in ``summary.json``
(the reconciled truth); for the stage under way, the figures are live
counts: dossiers the harness filed and saw complete or stopped after a
withdrawal (the ledger; withdrawn ones leave the completion rate's count, as
in the summary), sessions from the last time-series sample. The page says which.

With two systems it shows the link too: the outbox backlog (now · peak) and
the age of the oldest step waiting, whether the link agent is alive (the
time series' ``sync_backlog``, ``sync_oldest_s``, ``link_alive``) while the
stage runs; the sync lag p95 and the unsynced and not-delivered dossiers once
it is reconciled (those are only known then: "…" before, "unknown" for a run
without them).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..plan import DEFAULT_COMPLETION_TARGET, load_plan
from ..results.completion import interval_text, rate_interval
from ..results.summary import read_summary_file
from ..shared.jsonl import JsonlTail
from ..shared.status import COMPLETE_KINDS, WITHDRAWN_KINDS, completion_rate
from ..shared.wards import FormerProvince, load_units
from .text import TEXT

REFRESH_MS = 3000


@dataclass
class _StageLive:
    series: JsonlTail
    ledger: JsonlTail
    last: dict[str, Any] = field(default_factory=dict)
    peak_harness: int = 0
    peak_portal: int = 0
    filed: dict[int, int] = field(default_factory=dict)
    #: unit code -> [submitted, complete, withdrawn]
    units: dict[int, list[int]] = field(default_factory=dict)
    units_planned: list[int] = field(default_factory=list)
    backlog_peak: int | None = None

    def refresh(self) -> None:
        for row in self.series.read():
            self.last = row
            if isinstance(row.get("sync_backlog"), (int, float)):
                self.backlog_peak = max(self.backlog_peak or 0, int(row["sync_backlog"]))
            self.peak_harness = max(self.peak_harness, int(row.get("sessions_harness") or 0))
            self.peak_portal = max(self.peak_portal, int(row.get("sessions_portal") or 0))
        for e in self.ledger.read():
            kind = e.get("kind")
            if kind == "submitted" and e.get("id") not in self.filed:
                unit = int(e.get("unit") or 0)
                self.filed[e["id"]] = unit
                self.units.setdefault(unit, [0, 0, 0])[0] += 1
            elif kind in COMPLETE_KINDS and e.get("id") in self.filed:
                self.units.setdefault(self.filed.pop(e["id"]), [0, 0, 0])[1] += 1
            elif kind in WITHDRAWN_KINDS and e.get("id") in self.filed:
                self.units.setdefault(self.filed.pop(e["id"]), [0, 0, 0])[2] += 1


class LiveView:
    """What the page shows, computed from a run directory (thread-safe; incremental reads)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise RunError(f"{run_dir}: no such run directory")
        self.stages: dict[str, _StageLive] = {}
        self.lock = threading.Lock()
        self.planned: dict[str, list[int]] = {}
        self.targets: dict[str, float] = {}
        try:  # the plan as run: which units each stage has, and its completion target
            plan = load_plan(self.run_dir / "scenario.yaml")
            for s in plan.stages:
                self.planned[s.name] = list(s.units)
                self.targets[s.name] = s.completion_target
        except Exception:  # noqa: BLE001 (a run directory without its scenario still shows what it has)
            pass

    def _stage(self, name: str) -> _StageLive:
        if name not in self.stages:
            self.stages[name] = _StageLive(
                series=JsonlTail(self.run_dir / "stages" / name / "timeseries.jsonl"),
                ledger=JsonlTail(self.run_dir / "ledger" / f"{name}.jsonl"), units_planned=self.planned.get(name, []))
        return self.stages[name]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            try:
                summary = read_summary_file(self.run_dir)
            except RunError:
                summary = {"scenario": self.run_dir.name, "run_id": self.run_dir.name, "verdict": "INCOMPLETE",
                           "stages": [], "time_scale": None}
            done = {s["name"]: s for s in summary.get("stages", [])}
            stage_dirs = sorted((p for p in (self.run_dir / "stages").glob("*") if p.is_dir()),
                                key=lambda p: p.stat().st_mtime) if (self.run_dir / "stages").exists() else []
            running = next((p.name for p in reversed(stage_dirs) if p.name not in done), None)
            if summary.get("finished_at"):
                running = None
            stages = []
            for name in [*done, *([running] if running else [])]:
                stages.append(self._stage_view(name, done.get(name)))
            current = stages[-1] if stages else None
            return {"scenario": summary.get("scenario"), "run_id": summary.get("run_id"),
                    "verdict": summary.get("verdict") if not running else "RUNNING",
                    "finished": bool(summary.get("finished_at")), "time_scale": summary.get("time_scale"),
                    "report": (self.run_dir / "index.html").exists() and bool(summary.get("finished_at")),
                    "stages": stages, "current": current}

    def _stage_view(self, name: str, final: dict[str, Any] | None) -> dict[str, Any]:
        if final is not None:  # the reconciled truth
            units = {int(c): [r["submitted"], r["complete"], r.get("withdrawn", 0)]
                     for c, r in final.get("unit_results", {}).items()}
            d, s = final["dossiers"], final["sessions"]
            return {"name": name, "live": False, "verdict": final["verdict"], "units": final["units"],
                    "unit_codes": final.get("unit_codes") or self.planned.get(name, []),
                    "target": final.get("completion_target", DEFAULT_COMPLETION_TARGET),
                    "completion_rate": final["completion_rate"], "submitted": d["submitted"], "complete": d["complete"],
                    "lost": d["lost"], "sessions_harness": s["peak_harness"], "sessions_portal": s["peak_portal"],
                    "peak": True, "rps": None, "unit_counts": units,
                    "ci": _interval(d["complete"], d["submitted"], d.get("withdrawn") or 0),
                    "sync": _final_sync(final)}
        live = self._stage(name)
        live.refresh()
        sub = sum(v[0] for v in live.units.values())
        done = sum(v[1] for v in live.units.values())
        withdrawn = sum(v[2] for v in live.units.values())
        return {"name": name, "live": True, "verdict": "RUNNING", "units": len(live.units_planned) or None,
                "unit_codes": live.units_planned, "target": self.targets.get(name, DEFAULT_COMPLETION_TARGET),
                "completion_rate": completion_rate(done, sub, withdrawn), "submitted": sub, "complete": done,
                "lost": None,
                "sessions_harness": live.last.get("sessions_harness"), "sessions_portal": live.last.get("sessions_portal"),
                "peak_harness": live.peak_harness, "peak_portal": live.peak_portal, "peak": False,
                "rps": live.last.get("rps"), "unit_counts": live.units, "ci": _interval(done, sub, withdrawn),
                "sync": {"live": True, "backlog": live.last.get("sync_backlog"), "backlog_peak": live.backlog_peak,
                         "oldest_s": live.last.get("sync_oldest_s"), "link_alive": live.last.get("link_alive")}}


def _final_sync(final: dict[str, Any]) -> dict[str, Any] | None:
    """The link's figures of a reconciled stage (``summary.json``); None for a run without them."""
    sync = final.get("sync")
    if not isinstance(sync, dict):
        return None
    d = final.get("dossiers") or {}
    return {"live": False, "backlog": sync.get("backlog_end"), "backlog_peak": sync.get("backlog_max"),
            "lag_p95": None if sync.get("unknown") else (sync.get("lag_s") or {}).get("p95"),
            "unknown": bool(sync.get("unknown")), "unsynced": d.get("unsynced"),
            "not_delivered": d.get("not_delivered")}


def page(lang: str, initial: dict[str, Any] | None = None) -> str:
    """The page: drawn at once from `initial` (the snapshot at load), then from /api/live every 3 s."""
    t = TEXT[lang]
    provinces = [(p.value, t[p.value]) for p in FormerProvince]
    units = [{"code": u.code, "name": u.name, "p": u.former_province.value} for u in load_units()]
    labels = {k: t[k] for k in ("completion", "sessions", "dossiers", "lost", "target_short", "unit", "submitted",
                                "complete", "rate", "worst", "unit_grid", "stages", "legend", "no_dossiers",
                                "not_in_stage", "sync_backlog", "sync_lag", "unsynced", "not_delivered",
                                "unknown", "oldest_waiting", "link_down", "ci95")}
    labels.update(live="trực tiếp" if lang == "vi" else "live", final="đã đối soát" if lang == "vi" else "reconciled",
                  report="Báo cáo đầy đủ" if lang == "vi" else "Full report",
                  updated="cập nhật" if lang == "vi" else "updated", rps=t["rps"],
                  peak="cao nhất" if lang == "vi" else "peak")
    return _PAGE.replace("__LANG__", lang).replace("__DATA__", json.dumps(
        {"provinces": provinces, "units": units, "t": labels, "refresh": REFRESH_MS, "initial": initial},
        ensure_ascii=False).replace("</", "<\\/"))


_PAGE = """<!doctype html><html lang='__LANG__'><head><meta charset='utf-8'>
<meta name='viewport' content='width=device-width,initial-scale=1'><title>dvc-rehearsal live</title><style>
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:0;
padding:12px;color:#1b1f23;max-width:1180px;overflow-wrap:anywhere}h1{font-size:1.3rem;margin:.2rem 0}
h3{font-size:1rem;margin:1rem 0 .4rem}.banner{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;padding:.6rem .8rem;
border-radius:.4rem;color:#fff;background:#6e7781}.banner b{font-size:1.5rem}.GO{background:#1a7f37}.NO-GO{background:#cf222e}
.INCOMPLETE{background:#9a6700}.RUNNING{background:#1f6feb}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:.5rem;margin-top:.6rem}
.tile{border:1px solid #d0d7de;border-left:5px solid #6e7781;border-radius:.4rem;padding:.45rem .6rem}
.tile.ok{border-left-color:#1a7f37}.tile.bad{border-left-color:#cf222e}.tile .k{font-size:.8rem;color:#57606a}
.tile b{display:block;font-size:1.3rem}.tile .t{font-size:.75rem;color:#57606a}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(30px,1fr));gap:3px;margin-bottom:.6rem}
.cell{aspect-ratio:1;border-radius:3px;font-size:9px;display:flex;align-items:center;justify-content:center;color:#fff}
.c0{background:#1a7f37}.c1{background:#d97706}.c2{background:#cf222e}.c3{background:#d0d7de;color:#57606a}
.c4{background:#f6f8fa;color:#afb8c1;border:1px dashed #d0d7de}.muted{color:#57606a;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.88rem}th,td{border-bottom:1px solid #d0d7de;padding:.25rem .4rem;
text-align:right}th:first-child,td:first-child{text-align:left}.wrap{overflow-x:auto}
.legend{font-size:.8rem;color:#57606a}.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;
vertical-align:middle;margin:0 .2rem 0 .5rem}
</style></head><body><h1 id='title'>…</h1><div id='banner' class='banner'><b id='verdict'>…</b><span id='sub'></span></div>
<div id='stages' class='muted'></div><div id='tiles' class='tiles'></div><h3 id='gridtitle'></h3><div id='grid'></div>
<div id='legend' class='legend'></div><h3 id='worsttitle'></h3><div class='wrap'><table id='worst'></table></div>
<p class='muted' id='foot'></p>
<script>
const D=__DATA__, T=D.t;
const pct=x=>x==null?'–':(Math.floor(x*1000+1e-9)/10).toFixed(1)+'%';
const num=x=>x==null?'–':Number(x).toLocaleString('en-US');
const esc=s=>String(s).replace(/[&<>'"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;',"'":'&#39;','"':'&quot;'}[c]));
function tile(key,k,v,t,state){return `<div class='tile ${state||''}' data-kpi='${key}'><div class='k'>${esc(k)}</div><b>${esc(v)}</b><div class='t'>${esc(t||'')}</div></div>`}
function syncTiles(y){
  if(!y){return ''}
  const sec=x=>x==null?'–':Number(x).toFixed(x<10?2:1)+' s', wait=x=>x==null?'…':num(x);
  return tile('sync_backlog',T.sync_backlog,num(y.backlog_peak)+' · '+num(y.backlog),y.link_alive===false?T.link_down:'',y.link_alive===false?'bad':'')+
    (y.live?tile('sync_oldest',T.oldest_waiting,sec(y.oldest_s),''):
      tile('sync_lag',T.sync_lag,y.unknown?T.unknown:'p95 '+sec(y.lag_p95),''))+
    tile('unsynced',T.unsynced,wait(y.unsynced),'',y.unsynced==null?'':(y.unsynced==0?'ok':'bad'))+
    tile('not_delivered',T.not_delivered,wait(y.not_delivered),'',y.not_delivered==null?'':(y.not_delivered==0?'ok':'bad'));
}
function draw(d){
  document.getElementById('title').textContent=(d.scenario||'')+' — '+(d.run_id||'');
  const v=document.getElementById('verdict'); v.textContent=d.verdict; v.parentNode.className='banner '+d.verdict;
  document.getElementById('sub').textContent=(d.time_scale?'×'+d.time_scale+' · ':'')+T.updated+' '+new Date().toLocaleTimeString();
  document.getElementById('stages').innerHTML=d.stages.map(s=>`<span data-stage='${esc(s.name)}'>${esc(s.name)}: <b>${esc(s.verdict)}</b></span>`).join(' · ')
    +(d.report?` · <a href='report'>${esc(T.report)}</a>`:'');
  const c=d.current; if(!c){return}
  const sh=c.peak?c.sessions_harness:c.sessions_harness, sp=c.sessions_portal;
  document.getElementById('tiles').innerHTML=
    tile('stage',c.name,c.live?T.live:T.final,(c.units||'–')+' '+T.unit)+
    tile('completion_rate',T.completion,pct(c.completion_rate),T.target_short+' ≥ '+pct(c.target)+(c.ci?' · '+T.ci95+' '+c.ci:''),c.completion_rate==null?'':(c.completion_rate>=c.target?'ok':'bad'))+
    tile('sessions',T.sessions,num(sh)+' · '+num(sp),(c.peak?T.peak+' · ':'')+T.target_short+' ≥ 1,000',Math.min(sh||0,sp||0)>=1000?'ok':'')+
    tile('dossiers',T.dossiers,num(c.submitted)+' · '+num(c.complete),'')+
    tile('lost',T.lost,c.lost==null?'…':num(c.lost),T.target_short+' 0',c.lost==null?'':(c.lost==0?'ok':'bad'))+
    (c.rps!=null?tile('rps',T.rps,Number(c.rps).toFixed(1),''):'')+syncTiles(c.sync);
  const inStage=new Set(c.unit_codes||[]), uc=c.unit_counts||{};
  document.getElementById('gridtitle').textContent=T.unit_grid+' — '+c.name;
  let html='';
  for(const [p,label] of D.provinces){
    const us=D.units.filter(u=>u.p===p);
    html+=`<div class='muted'>${esc(label)} — ${us.length}</div><div class='grid'>`+us.map(u=>{
      const r=uc[u.code]||uc[String(u.code)]||[0,0,0], sub=r[0], done=r[1], left=sub-(r[2]||0), rate=left>0?done/left:null;
      const part=inStage.size==0||inStage.has(u.code);
      const cls=!part?4:(rate==null?3:(rate>=c.target?0:(rate>=c.target-0.1?1:2)));
      const tip=u.code+' '+u.name+': '+(sub?done+'/'+left+' '+pct(rate):(part?T.no_dossiers:T.not_in_stage));
      return `<div class='cell c${cls}' data-unit='${u.code}' title='${esc(tip)}'>${rate==null?'':Math.floor(rate*100+1e-9)}</div>`}).join('')+'</div>';
  }
  document.getElementById('grid').innerHTML=html;
  document.getElementById('legend').innerHTML=T.legend.split(' · ').map((x,i)=>`<i class='c${i}'></i>${esc(x)}`).join('');
  document.getElementById('worsttitle').textContent=T.worst;
  const names=Object.fromEntries(D.units.map(u=>[u.code,u.name]));
  const rows=Object.entries(uc).filter(([k,r])=>r[0]-(r[2]||0)>0).map(([k,r])=>[Number(k),r[0],r[1],r[1]/(r[0]-(r[2]||0))]).sort((a,b)=>a[3]-b[3]||b[1]-a[1]).slice(0,15);
  document.getElementById('worst').innerHTML=`<tr><th>${esc(T.unit)}</th><th>${esc(T.submitted)}</th><th>${esc(T.complete)}</th><th>${esc(T.rate)}</th></tr>`+
    rows.map(r=>`<tr><td>${r[0]} ${esc(names[r[0]]||'')}</td><td>${num(r[1])}</td><td>${num(r[2])}</td><td>${pct(r[3])}</td></tr>`).join('');
}
async function tick(){try{const r=await fetch('api/live',{cache:'no-store'});draw(await r.json());}catch(e){
  document.getElementById('sub').textContent='…'} setTimeout(tick,D.refresh)}
if(D.initial){draw(D.initial)} setTimeout(tick,D.initial?D.refresh:0);
</script></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    view: LiveView
    lang: str = "vi"

    def log_message(self, *_: Any) -> None:  # quiet: this runs beside a load test
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        path, _, query = self.path.partition("?")
        lang = "en" if "lang=en" in query else self.lang
        if path in ("/", "/index.html"):
            self._send(200, page(lang, self.view.snapshot()).encode(), "text/html; charset=utf-8")
        elif path == "/api/live":
            self._send(200, json.dumps(self.view.snapshot(), ensure_ascii=False).encode(), "application/json")
        elif path == "/report" and (self.view.run_dir / "index.html").exists():
            self._send(200, (self.view.run_dir / "index.html").read_bytes(), "text/html; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain")


def make_server(run_dir: Path, host: str = "127.0.0.1", port: int = 8090, lang: str = "vi") -> ThreadingHTTPServer:
    view = LiveView(run_dir)
    handler = type("Handler", (_Handler,), {"view": view, "lang": lang})
    return ThreadingHTTPServer((host, port), handler)


def _interval(complete: int, submitted: int, withdrawn: int) -> str | None:
    """The completion rate's 95 % Wilson interval as the report writes it ("98.6–99.3 %"); None with nothing to count."""
    i = rate_interval(int(complete or 0), int(submitted or 0), int(withdrawn or 0))
    return None if i is None else interval_text(i.low, i.high)
