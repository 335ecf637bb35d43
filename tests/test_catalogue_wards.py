"""The procedure catalogue (1,875, heavy-tailed, deterministic) and the 168 units."""

from __future__ import annotations

import collections
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rehearsal.shared.catalogue import DEFAULT_PATH, CatalogueError, load_catalogue
from rehearsal.shared.wards import FormerProvince, UnitType, load_units, units_by_code


def _copy(tmp_path: Path, change=None) -> Path:
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    if change:
        change(doc)
    path = tmp_path / "procedures.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_catalogue_has_exactly_1875_with_30_to_50_real() -> None:
    cat = load_catalogue()
    assert len(cat) == 1875
    real = [p for p in cat.procedures if p.real]
    assert 30 <= len(real) <= 50
    assert len({p.code for p in cat.procedures}) == 1875
    for p in real:
        assert p.fields and p.attachments and p.steps and p.name_en, p.code
    lien_thong = [p for p in real if p.lien_thong]
    assert len(lien_thong) >= 5 and all(p.second_agency for p in lien_thong)


def test_catalogue_is_deterministic(tmp_path: Path) -> None:
    a = load_catalogue(_copy(tmp_path))
    b = load_catalogue(DEFAULT_PATH)
    assert a.procedures == b.procedures


def test_popularity_is_heavy_tailed() -> None:
    cat = load_catalogue()
    weights = sorted((p.weight for p in cat.procedures), reverse=True)
    assert sum(weights[:10]) > 0.5 * sum(weights)
    tail = [p.weight for p in cat.procedures if not p.real]
    assert all(x >= y for x, y in zip(tail, tail[1:]))


def test_picks_follow_the_weights() -> None:
    cat = load_catalogue()
    rng = random.Random(42)
    n = 200_000
    counts = collections.Counter(cat.pick(rng).code for _ in range(n))
    total = sum(p.weight for p in cat.procedures)
    top = max(cat.procedures, key=lambda p: p.weight)
    assert counts[top.code] / n == pytest.approx(top.weight / total, abs=0.02)
    assert len(counts) > 300  # the long tail is reached


def test_search_finds_vietnamese_names() -> None:
    found = [p.code for p in load_catalogue().search("khai sinh")]
    assert "HT-01" in found


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d["procedures"].append(dict(d["procedures"][0])), "HT-01: code: used twice"),
    (lambda d: d["procedures"][0]["fields"][0].update(type="colour"), "HT-01: fields[0].type: unknown field type"),
    (lambda d: d["procedures"][0]["fields"][2].pop("choices"), "HT-01: fields[2].choices"),
    (lambda d: d["procedures"][1].update(fee_vnd=-5), "HT-02: fee_vnd"),
    (lambda d: d["procedures"][1].update(weight=0), "HT-02: weight"),
    (lambda d: d["procedures"][1].update(due_days=0), "HT-02: due_days"),
    (lambda d: d["procedures"][1].pop("group"), "HT-02: group: missing"),
])
def test_bad_catalogue_names_the_procedure_and_field(tmp_path: Path, change, fragment: str) -> None:
    with pytest.raises(CatalogueError, match=re.escape(fragment)):
        load_catalogue(_copy(tmp_path, change))


def test_168_units_by_type_and_former_province() -> None:
    units = load_units()
    assert len(units) == 168
    assert collections.Counter(u.type for u in units) == {UnitType.PHUONG: 113, UnitType.XA: 54, UnitType.DAC_KHU: 1}
    assert collections.Counter(u.former_province for u in units) == {
        FormerProvince.HCMC: 102, FormerProvince.BINH_DUONG: 36, FormerProvince.BA_RIA_VUNG_TAU: 30}
    con_dao = units_by_code()[26732]
    assert (con_dao.name, con_dao.type, con_dao.former_province) == (
        "Đặc khu Côn Đảo", UnitType.DAC_KHU, FormerProvince.BA_RIA_VUNG_TAU)
    assert units_by_code()[26536].name == "Phường Rạch Dừa"  # "Phường  Rạch Dừa" upstream
    assert all("  " not in u.name and u.name == u.name.strip() for u in units)


def _wards(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rehearsal.cli", "wards", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, count", [((), 168), (("--former-province", "binh-duong"), 36),
                                         (("--type", "xa"), 54),
                                         (("--former-province", "hcmc", "--former-province", "ba-ria-vung-tau"), 132)])
def test_wards_command(args: tuple[str, ...], count: int) -> None:
    import json

    table = _wards(*args)
    assert table.returncode == 0 and table.stdout.strip().endswith(f"{count} units")
    machine = _wards(*args, "--json")
    assert len(json.loads(machine.stdout)) == count


def test_wards_bad_filter_exits_2_with_one_line() -> None:
    proc = _wards("--type", "quan")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
