"""The plain report is built from summary.json alone, also for a run that crashed."""

from __future__ import annotations

import json
from pathlib import Path

from rehearsal.report.page import build_report
from rehearsal.shared.formats import percent


def _summary(verdict: str = "GO") -> dict:
    return {
        "scenario": "demo", "run_id": "20250625T010000Z-demo", "started_at": "2025-06-25T01:00:00Z",
        "finished_at": None if verdict == "INCOMPLETE" else "2025-06-25T03:00:00Z", "time_scale": 60,
        "target": "reference", "verdict": verdict,
        "stages": [{
            "name": "full-25-06", "verdict": verdict, "units": 168,
            "sessions": {"peak_harness": 1479, "peak_portal": 1483},
            "dossiers": {"submitted": 4786, "complete": 4785, "lost": 0, "duplicated": 0},
            "completion_rate": 4785 / 4786, "completion_target": 0.96, "on_time_rate": 0.97,
            "units_below_target": [], "requests": {"GET /api/health": {"count": 10, "failures": 0, "p50_ms": 1,
                                                                        "p95_ms": 2, "p99_ms": 3}},
            "requests_total": {"p95_ms": 380.0}, "error_rate": 0.0,
            "gates": [{"name": "completion_rate >= 0.96", "expr": "completion_rate >= 0.96",
                       "observed": 4785 / 4786, "passed": True}],
            "unit_results": {"26732": {"submitted": 29, "complete": 28, "completion_rate": 28 / 29}},
        }],
    }


def test_rates_round_down_never_up_to_a_target() -> None:
    assert percent(4785 / 4786) == "99.9%"
    assert percent(0.9599) == "95.9%"
    assert percent(0.96) == "96.0%"
    assert percent(1.0) == "100.0%"
    assert percent(None) == "–"


def test_report_shows_the_summarys_numbers(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(_summary()), encoding="utf-8")
    html = build_report(tmp_path).read_text(encoding="utf-8")
    for text in ("99.9%", "1,479 · 1,483", "4,786 · 4,785", "Đặc khu Côn Đảo", "96.5%", "380 ms",
                 "completion_rate &gt;= 0.96", "Tỷ lệ hồ sơ hoàn thành"):
        assert text in html, text
    assert "chưa hoàn tất" not in html


def test_a_crashed_run_is_marked_incomplete(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(_summary("INCOMPLETE")), encoding="utf-8")
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "chưa hoàn tất (INCOMPLETE)" in html
