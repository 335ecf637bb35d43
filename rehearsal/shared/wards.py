"""The 168 units (phường, xã, đặc khu) of Ho Chi Minh City after 1/7/2025.

The official list and codes come from the `vietnam-provinces` package
(province code 79). Its names carry stray whitespace (``"Phường  Rạch Dừa"``),
which we fold.

**Former province.** Each new unit kept the official (GSO) code of one of the
old wards merged into it, and the GSO numbered wards in contiguous blocks per
old province. So the code alone tells where a unit came from:

* ``code < 26500``          → Bình Dương (old province 74, codes 25741–26xxx): 36 units
* ``26500 ≤ code ≤ 26733``  → Bà Rịa–Vũng Tàu (old province 77, codes 26506–26732,
  Côn Đảo is 26732): 30 units
* ``code ≥ 26734``          → old Ho Chi Minh City (old province 79, codes 26734–27694): 102 units

`tests/test_wards.py` checks the 102 / 36 / 30 split against these bounds.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache

from vietnam_provinces import Ward

PROVINCE_CODE = 79
PROVINCE_NAME = "Thành phố Hồ Chí Minh"

_BINH_DUONG_MAX = 26499
_BRVT_MAX = 26733


class UnitType(str, enum.Enum):
    """The three kinds of unit after the merger."""

    PHUONG = "phuong"
    XA = "xa"
    DAC_KHU = "dac-khu"

    @property
    def label(self) -> str:
        return {"phuong": "phường", "xa": "xã", "dac-khu": "đặc khu"}[self.value]


class FormerProvince(str, enum.Enum):
    """The province a unit belonged to before the 2025 merger."""

    HCMC = "hcmc"
    BINH_DUONG = "binh-duong"
    BA_RIA_VUNG_TAU = "ba-ria-vung-tau"

    @property
    def label(self) -> str:
        return {"hcmc": "TP. Hồ Chí Minh (cũ)", "binh-duong": "Bình Dương",
                "ba-ria-vung-tau": "Bà Rịa – Vũng Tàu"}[self.value]


@dataclass(frozen=True)
class Unit:
    """One ward, commune or special zone."""

    code: int
    """Official GSO code (e.g. 26506)."""
    name: str
    """Normalised official name (e.g. "Phường Rạch Dừa")."""
    type: UnitType
    former_province: FormerProvince

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "name": self.name, "type": self.type.value,
                "former_province": self.former_province.value}


_TYPES = {"phường": UnitType.PHUONG, "xã": UnitType.XA, "đặc khu": UnitType.DAC_KHU}


def former_province_of(code: int) -> FormerProvince:
    """The pre-merger province of a unit, from its official code (see module doc)."""
    if code <= _BINH_DUONG_MAX:
        return FormerProvince.BINH_DUONG
    if code <= _BRVT_MAX:
        return FormerProvince.BA_RIA_VUNG_TAU
    return FormerProvince.HCMC


def normalise_name(name: str) -> str:
    """Fold runs of whitespace in an official name into single spaces."""
    return re.sub(r"\s+", " ", name).strip()


@lru_cache(maxsize=1)
def load_units() -> tuple[Unit, ...]:
    """All 168 units of province 79, ordered by code."""
    units = []
    for ward in Ward.iter_by_province(PROVINCE_CODE):
        code = int(ward.code)
        units.append(Unit(code=code, name=normalise_name(ward.name),
                          type=_TYPES[ward.division_type.value],
                          former_province=former_province_of(code)))
    return tuple(sorted(units, key=lambda u: u.code))


@lru_cache(maxsize=1)
def units_by_code() -> dict[int, Unit]:
    """The units keyed by official code."""
    return {u.code: u for u in load_units()}


def filter_units(units: tuple[Unit, ...] | None = None, *,
                 former_provinces: set[FormerProvince] | None = None,
                 types: set[UnitType] | None = None) -> list[Unit]:
    """The units matching every filter given (None means no filter)."""
    chosen = []
    for unit in load_units() if units is None else units:
        if former_provinces and unit.former_province not in former_provinces:
            continue
        if types and unit.type not in types:
            continue
        chosen.append(unit)
    return chosen
