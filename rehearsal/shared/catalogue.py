"""The procedure catalogue: the 1,875 administrative procedures a citizen can file.

`config/procedures.yaml` holds the real ward-level procedures (birth, death and
marriage registration, residence confirmation, certified copies, …) with their
popularity weight, fee, form fields, attachments and processing steps, and for
the liên thông ones the second agency. The HCMC portal declared 1,875
procedures; the rest of them are a *generated long tail*: deterministic
(the same every run), with Zipf-like popularity so that a few procedures carry
most of the traffic, as on a real portal. The `long_tail` block of the YAML sets
its size and shape.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .. import CONFIG_DIR

DEFAULT_PATH = CONFIG_DIR / "procedures.yaml"


class CatalogueError(ValueError):
    """config/procedures.yaml is wrong or missing: one line naming the file, the procedure and the field.

    Defined here, not in `rehearsal.errors`, because the reference portal reads
    the catalogue too and imports nothing of the harness; the harness's CLI
    turns it into its one error line like any `RehearsalError`.
    """


@dataclass(frozen=True)
class FormField:
    """One field of a procedure's electronic form."""

    name: str
    label: str
    type: str = "text"
    """text | date | number | id_number | phone | choice"""
    required: bool = True
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attachment:
    """One document the citizen must (or may) attach."""

    name: str
    label: str
    required: bool = True


@dataclass(frozen=True)
class Procedure:
    """One administrative procedure (thủ tục hành chính)."""

    code: str
    """Catalogue code, e.g. "HT-01" (real) or "LT-1234" (long tail)."""
    name: str
    """Vietnamese name as a citizen sees it."""
    name_en: str
    group: str
    """Procedure group (e.g. "ho-tich" civil status), for reports."""
    weight: float
    """Relative popularity: the chance of being picked is weight / total weight."""
    fee_vnd: int
    due_days: float
    """Legal processing time in working days (the due time is set at intake)."""
    fields: tuple[FormField, ...]
    attachments: tuple[Attachment, ...]
    steps: tuple[str, ...]
    """Processing chain, e.g. ("specialist", "leader", "result").""" 
    second_agency: str | None = None
    """For liên thông procedures: the agency the dossier is handed on to."""
    real: bool = True
    """False for the generated long tail."""

    @property
    def lien_thong(self) -> bool:
        return self.second_agency is not None

    def summary(self) -> dict[str, object]:
        return {"code": self.code, "name": self.name, "name_en": self.name_en,
                "group": self.group, "fee_vnd": self.fee_vnd, "due_days": self.due_days,
                "lien_thong": self.lien_thong}

    def as_dict(self) -> dict[str, object]:
        return {**self.summary(),
                "fields": [vars(f) | {"choices": list(f.choices)} for f in self.fields],
                "attachments": [vars(a) for a in self.attachments],
                "steps": list(self.steps), "second_agency": self.second_agency,
                "weight": self.weight}


class Catalogue:
    """All procedures, with weighted picking."""

    def __init__(self, procedures: tuple[Procedure, ...]) -> None:
        self.procedures = procedures
        self._by_code = {p.code: p for p in procedures}
        self._cumulative = list(itertools.accumulate(p.weight for p in procedures))

    def __len__(self) -> int:
        return len(self.procedures)

    def get(self, code: str) -> Procedure | None:
        return self._by_code.get(code)

    def pick(self, rng: random.Random) -> Procedure:
        """One procedure, chosen with probability proportional to its weight."""
        x = rng.random() * self._cumulative[-1]
        return self.procedures[bisect.bisect_right(self._cumulative, x)]

    def search(self, query: str) -> list[Procedure]:
        q = query.casefold()
        return [p for p in self.procedures if q in p.name.casefold() or q in p.code.casefold()]


FIELD_TYPES = ("text", "date", "number", "id_number", "phone", "choice")


def _check(raw: dict, path: Path) -> None:
    """Refuse a procedure the portal or the users could not work with."""
    code = raw.get("code", "?")

    def bad(field: str, why: str) -> CatalogueError:
        return CatalogueError(f"{path}: procedure {code}: {field}: {why}")

    for key in ("code", "name", "group", "weight"):
        if key not in raw:
            raise bad(key, "missing (required)")
    if not isinstance(raw["weight"], (int, float)) or isinstance(raw["weight"], bool) or raw["weight"] <= 0:
        raise bad("weight", f"expected a number greater than 0; found {raw['weight']!r}")
    if not isinstance(raw.get("fee_vnd", 0), int) or raw.get("fee_vnd", 0) < 0:
        raise bad("fee_vnd", f"expected a whole number of VND ≥ 0; found {raw.get('fee_vnd')!r}")
    due = raw.get("due_days", 1)
    if not isinstance(due, (int, float)) or isinstance(due, bool) or due <= 0:
        raise bad("due_days", f"expected a number of working days greater than 0; found {due!r}")
    for i, f in enumerate(raw.get("fields", ())):
        kind = f.get("type", "text")
        if kind not in FIELD_TYPES:
            raise bad(f"fields[{i}].type", f"unknown field type {kind!r} (expected one of: {', '.join(FIELD_TYPES)})")
        if kind == "choice" and not f.get("choices"):
            raise bad(f"fields[{i}].choices", "a choice field needs its list of choices")


def _procedure(raw: dict, path: Path) -> Procedure:
    _check(raw, path)
    try:
        return Procedure(
            code=str(raw["code"]), name=raw["name"], name_en=raw.get("name_en", raw["name"]),
            group=raw["group"], weight=float(raw["weight"]), fee_vnd=int(raw.get("fee_vnd", 0)),
            due_days=float(raw.get("due_days", 1)),
            fields=tuple(FormField(**{**f, "choices": tuple(f.get("choices", ()))})
                         for f in raw.get("fields", ())),
            attachments=tuple(Attachment(**a) for a in raw.get("attachments", ())),
            steps=tuple(raw.get("steps", ("specialist", "leader", "result"))),
            second_agency=raw.get("second_agency"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogueError(f"{path}: procedure {raw.get('code', '?')}: {exc}") from None


def _long_tail(spec: dict, start_rank: int, count: int) -> list[Procedure]:
    """Deterministic generated procedures with Zipf-like weights.

    Rank r (counting the real ones first) gets weight ``scale / r**exponent``,
    so popularity falls off as a power law like real portal traffic.
    """
    rng = random.Random(spec.get("seed", 1875))
    groups = spec["groups"]
    scale = float(spec.get("scale", 1.0))
    exponent = float(spec.get("exponent", 1.1))
    out = []
    for i in range(count):
        rank = start_rank + i
        group = groups[i % len(groups)]
        n_fields = rng.randint(2, 6)
        fields = tuple(FormField(name=f"field_{k}", label=f"Thông tin {k}", type="text")
                       for k in range(1, n_fields + 1))
        attachments = tuple(Attachment(name=f"doc_{k}", label=f"Giấy tờ {k}", required=k == 1)
                            for k in range(1, rng.randint(1, 3) + 1))
        lien_thong = rng.random() < float(spec.get("lien_thong_share", 0.1))
        out.append(Procedure(
            code=f"LT-{rank:04d}", name=f"{group['name']} (thủ tục {rank})",
            name_en=f"{group.get('name_en', group['name'])} (procedure {rank})",
            group=group["group"], weight=round(scale / rank ** exponent, 6),
            fee_vnd=rng.choice((0, 0, 0, 10000, 20000, 50000)),
            due_days=float(rng.choice((1, 2, 3, 5, 7, 10))),
            fields=fields, attachments=attachments,
            steps=("specialist", "leader", "result"),
            second_agency=rng.choice(spec.get("agencies", ["Sở Tư pháp"])) if lien_thong else None,
            real=False))
    return out


@lru_cache(maxsize=4)
def load_catalogue(path: Path = DEFAULT_PATH) -> Catalogue:
    """The full catalogue: the real procedures of `path` plus the long tail up to `total`."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot read the procedure catalogue: {exc}") from None
    real = [_procedure(raw, Path(path)) for raw in doc["procedures"]]
    seen: set[str] = set()
    for proc in real:
        if proc.code in seen:
            raise CatalogueError(f"{path}: procedure {proc.code}: code: used twice (expected unique codes)")
        seen.add(proc.code)
    total = int(doc.get("total", 1875))
    if len(real) > total:
        raise CatalogueError(f"{path}: {len(real)} procedures listed but total is {total}")
    tail = _long_tail(doc["long_tail"], start_rank=len(real) + 1, count=total - len(real))
    return Catalogue(tuple(real + tail))
