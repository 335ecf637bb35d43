"""The rehearsal plan: a scenario YAML, validated once at the edge, as frozen dataclasses.

`load_plan(path)` reads a scenario and returns a `Plan`, or raises one `PlanError`
that names the file, the line, the field and what was expected::

    scenarios/demo.yaml:14: stages[0].units.codes[2]: unknown unit code 99999 (expected one
    of the 168 codes of province 79; see 'rehearse wards')

The YAML is composed into nodes rather than loaded, so every value keeps its
line, and the schema is walked by hand: small, explicit, one message per
mistake. Field paths count list items from 0. The schema (``docs/scenarios.md``
explains every field)::

    name: demo                  # required; lowercase slug of a-z, 0-9 and '-'
    description: "..."          # optional text
    target: reference           # optional, default reference (a name in config/targets.yaml)
    time_scale: 60              # optional number > 0, default 1 (real time); --time-scale overrides
    seed: 1                     # optional whole number, default 1
    baseline: ci-main           # optional: the stored baseline 'baseline' thresholds compare with
    gates: [...]                # optional: gates on the whole run (all stages together)
    stages:                     # required, at least one; stage names unique
      - name: full              # required slug
        description: "..."      # optional text
        units:                  # optional; default all 168 units
          former_province: [hcmc, binh-duong, ba-ria-vung-tau]   # filters combine (AND)
          type: [phuong, xa, dac-khu]
          codes: [26506, 26509] # added to what the filters chose; only these if no filter
          exclude: [26732]      # removed last
          sample: 20            # a seeded random subset of the selection
        duration: 2h            # required > 0: the simulated filing window
        grace: 30m              # optional >= 0, default 0: no filing, officers work on
        citizens:               # required
          users: 1200           # whole number 0..100000
          spawn_rate: 50        # > 0, users started per WALL-CLOCK second
          think_time: [30s, 90s]  # [low, high] (low <= high) or one duration
          other_unit_share: 0.1   # 0..1 or 0%..100%, default 0.1
          attachment_kb: [2, 16]  # [low, high] KiB, 0..64, default [2, 16]
          follow_interval: 10m    # > 0, default 10m
        officers:               # optional; the values shown are the defaults
          per_unit: 2           # whole number 0..20
          think_time: [30s, 90s]
          poll_interval: 1m     # > 0
          supplement_share: 0.05
          refuse_share: 0.02
          sign_in_lead: 0s      # >= 0: officers start this long before citizens
        gates:                  # optional: an expression, or {name:, expr:, abort_on_fail:, abort_grace:}
          - completion_rate >= 96%
          - {name: no lost dossiers, expr: lost_dossiers == 0}
          - p95_ms{name="POST /api/dossiers"} over every 5m <= 800
          - {expr: error_rate over last 2m < 5%, abort_on_fail: true, abort_grace: 5m}

Gate expressions are `rehearsal.plan.gate_language`'s: metric, filters, window,
comparison, threshold (a number or ``baseline * 1.10``).

Durations are ``90s``, ``30m``, ``2h``, ``1h30m``, ``1.5h`` or plain seconds, and
are *simulated* time: the runner divides them by the time scale (``spawn_rate``
alone is wall-clock). Numbers are plain decimals; ``96%`` means 0.96 where a
share or a rate is expected. ``1_000`` and ``1,000`` are refused (YAML would read
the first as 1000 and the second as text), and so are ``yes``/``no`` where a
number is expected. YAML anchors and ``<<: *merge`` keys work as usual.
"""

from __future__ import annotations

import difflib
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import PlanError
from .gate_language import GATE_METRICS, RATE_METRICS, Gate, GateSyntaxError, parse_gate, satisfiable
from .gate_language import SHAPE as GATE_SHAPE

from ..shared.wards import PROVINCE_CODE, FormerProvince, UnitType, load_units, units_by_code


#: The dossier completion rate the June 2025 trial reached after 2 hours: the target when a stage names none.
DEFAULT_COMPLETION_TARGET = 0.96
MAX_OFFICERS_PER_UNIT = 20
MAX_CITIZENS = 100_000
#: The citizens' attachments are cut from one 64 KiB buffer (locustfiles/citizens.py).
MAX_ATTACHMENT_KB = 64

_TAG = "tag:yaml.org,2002:"
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_SEPARATED = re.compile(r"[+-]?\d[\d_,]*(?:\.\d+)?\s*%?")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?")
_DURATION_EXAMPLES = "like 90s, 30m, 2h, 1h30m, 1.5h or a number of seconds"
_GATE_SHAPE = GATE_SHAPE


@dataclass(frozen=True)
class ThinkTime:
    """A pause drawn uniformly between two simulated durations."""

    low_s: float
    """Shortest pause, simulated seconds."""
    high_s: float
    """Longest pause, simulated seconds (>= low_s)."""


@dataclass(frozen=True)
class UnitSelection:
    """How a stage chose its units, as written in the file (for the report)."""

    former_provinces: tuple[str, ...] = ()
    """`FormerProvince` values; empty means no filter."""
    types: tuple[str, ...] = ()
    """`UnitType` values; empty means no filter."""
    codes: tuple[int, ...] = ()
    """Units added by code to what the filters chose (exactly these if there is no filter)."""
    exclude: tuple[int, ...] = ()
    """Units removed after the filters and codes."""
    sample: int | None = None
    """A seeded random subset of this size; None takes the whole selection."""


@dataclass(frozen=True)
class RampStep:
    """One step of a load shape: go to ``to`` users over ``over_s``, or hold (``to`` None) for ``over_s``."""

    to: int | None
    over_s: float
    """Simulated seconds."""


@dataclass(frozen=True)
class CitizenLoad:
    """The citizens of a stage.

    Closed model (the default): ``users`` citizens started at ``spawn_rate``,
    each filing a dossier, following it to its result and coming back as the
    next citizen; ``ramp`` shapes the crowd in steps instead of holding it.
    Open model: with ``arrival_rate``, new citizens arrive at that rate
    whatever the portal's speed (like k6's arrival-rate executors); ``users``
    is then the most visits that can be under way at once, and an arrival
    that finds them all busy is counted as dropped.
    """

    users: int
    """How many citizen users run at once (0..100000); with arrival_rate, the most at once."""
    spawn_rate: float
    """Users started per wall-clock second (not scaled)."""
    think_time: ThinkTime
    """Pause between a citizen's steps."""
    other_unit_share: float = 0.1
    """Share of dossiers filed at another unit than the citizen's own (one-stop rules)."""
    attachment_kb: tuple[int, int] = (2, 16)
    """Size range of each attachment, KiB."""
    follow_interval_s: float = 600.0
    """Simulated seconds between a citizen's checks of their dossier's status."""
    ramp: tuple[RampStep, ...] = ()
    """Steps from the start of filing; empty: start all users at spawn_rate and hold them."""
    arrival_rate_per_min: float | None = None
    """Open model: new citizens per simulated minute; None is the closed model."""


@dataclass(frozen=True)
class OfficerLoad:
    """The officers of a stage: ``per_unit`` accounts at each unit."""

    per_unit: int = 2
    """Officer accounts per unit (0..20); the 2025 trials had 2."""
    think_time: ThinkTime = ThinkTime(30.0, 90.0)
    """Time one step on one dossier takes."""
    poll_interval_s: float = 60.0
    """Simulated seconds an officer waits before looking at an empty queue again."""
    supplement_share: float = 0.05
    """Share of dossiers sent back once for a supplement."""
    refuse_share: float = 0.02
    """Share of dossiers refused at intake."""
    sign_in_lead_s: float = 0.0
    """Officers start this many simulated seconds before the citizens."""


#: Fault kinds a stage can declare; all but ``absence`` are applied by the portal (`rehearsal.portal.faults`).
FAULT_KINDS = ("latency", "errors", "outage", "slow-agency", "silent-drop", "absence")


@dataclass(frozen=True)
class StageFault:
    """A fault on the stage's timeline: from ``at_s`` for ``for_s`` (None: to the stage's end)."""

    kind: str
    at_s: float
    """Simulated seconds from the start of the stage (the officers' sign-in)."""
    for_s: float | None
    name: str
    endpoints: tuple[str, ...] = ()
    """'METHOD /route' patterns (fnmatch); empty: every endpoint."""
    delay_s: tuple[float, float] | None = None
    """latency: fixed (low == high) or uniform, wall-clock seconds (network time is not compressed)."""
    mean_s: float | None = None
    """latency: exponential with this mean, wall-clock seconds."""
    rate: float = 1.0
    """errors / silent-drop: share of matching requests hit."""
    status: int = 503
    """errors: the status answered."""
    factor: float = 1.0
    """slow-agency: the second agency takes this many times longer."""
    units: tuple[int, ...] = ()
    """absence: units whose officers are away."""
    officers: int | None = None
    """absence: officers away per unit; None: all of them."""

    def portal_spec(self) -> dict[str, object]:
        """What `PUT /api/admin/faults` takes for this fault."""
        spec: dict[str, object] = {"id": self.name, "kind": self.kind, "endpoints": list(self.endpoints)}
        if self.kind == "latency":
            if self.mean_s is not None:
                spec["mean_s"] = self.mean_s
            else:
                spec["delay_s"] = list(self.delay_s or (0.0, 0.0))
        elif self.kind in ("errors", "silent-drop"):
            spec.update(rate=self.rate, status=self.status)
        elif self.kind == "slow-agency":
            spec["factor"] = self.factor
        return spec


@dataclass(frozen=True)
class Cutover:
    """The switch from the legacy (city) portal to the national one, in the middle of a stage."""

    at_s: float
    """Simulated seconds from the start of the stage."""
    mode: str = "503"
    """How the legacy portal turns people away: ``503`` (with Retry-After) or ``redirect`` (308)."""
    retry_after_s: float = 60.0
    """Simulated; the header carries it divided by the time scale (at least 1 s)."""
    migrate: bool = True
    """Copy legacy's dossiers to national right after closing: every open one, and the finished ones as a record."""


@dataclass(frozen=True)
class Stage:
    """One trial run of the plan (e.g. the 22/6 pilot or the 25/6 full trial)."""

    name: str
    description: str
    units: tuple[int, ...]
    """Official codes of the units taking part, sorted, never empty."""
    unit_selection: UnitSelection
    duration_s: float
    """Simulated filing window (> 0)."""
    grace_s: float
    """Simulated time after the window: no new filing, officers keep working; completion is counted at its end."""
    citizens: CitizenLoad
    officers: OfficerLoad
    gates: tuple[Gate, ...]
    faults: tuple[StageFault, ...] = ()
    cutover: Cutover | None = None
    """If set, the stage starts on the legacy portal and switches to the national one at ``cutover.at_s``."""

    @property
    def total_s(self) -> float:
        """Simulated length: officers' lead + filing window + grace."""
        return self.officers.sign_in_lead_s + self.duration_s + self.grace_s

    @property
    def completion_target(self) -> float:
        """The completion rate the stage and each of its units must reach: the threshold of the stage's
        plain completion gate (whole stage, no filter, a fixed number, ``>``/``>=``), else 96 %.

        The one rule for the report, the live view and Locust's Rehearsal tab.
        """
        for gate in self.gates:
            if gate.metric == "completion_rate" and gate.op in (">", ">=") and not gate.filters \
                    and not gate.uses_baseline:
                return gate.threshold
        return DEFAULT_COMPLETION_TARGET


@dataclass(frozen=True)
class Plan:
    """A whole scenario: its stages run in order."""

    name: str
    description: str
    target: str
    """A target name from config/targets.yaml (checked when the plan is run, not here)."""
    time_scale: float
    """Simulated seconds per wall-clock second; the --time-scale override if one was given."""
    seed: int
    stages: tuple[Stage, ...]
    source: Path
    """The scenario file, absolute (safe to hand to another process)."""
    file: str = ""
    """The scenario file as the user named it (relative if they gave it relative), for messages."""
    gates: tuple[Gate, ...] = ()
    """Gates on the whole run: every stage's figures together (requests merged, dossiers summed)."""
    baseline: str | None = None
    """The stored baseline that ``baseline`` thresholds compare with (``--baseline`` overrides)."""

    def stage(self, name: str) -> Stage:
        """The stage called `name`; `PlanError` listing the stage names if there is none."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise PlanError(f"unknown stage {name!r} (expected one of: {', '.join(s.name for s in self.stages)})",
                        file=self.file or str(self.source))

    def wall_s(self, simulated_s: float) -> float:
        """Wall-clock seconds that `simulated_s` take at this plan's time scale."""
        return simulated_s / self.time_scale


# -- values --------------------------------------------------------------------

def parse_duration(value: object, *, where: str = "duration") -> float:
    """Seconds from ``90s``, ``30m``, ``2h``, ``1h30m``, ``1.5h`` or a plain number of seconds.

    Raises `PlanError` (field `where`, no file) for anything else or a negative duration.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PlanError(f"expected a duration {_DURATION_EXAMPLES}; found {value!r}", field=where)
    if isinstance(value, str):
        text = value.strip()
        body = text[1:].lstrip() if text.startswith("-") else text
        if _DECIMAL.fullmatch(body):
            seconds = float(body)
        else:
            match = _DURATION.fullmatch(body)
            if not body or not match or not any(match.groups()):
                hint = " (write 1h30m or 1m30s, not 1:30)" if ":" in body else ""
                raise PlanError(f"expected a duration {_DURATION_EXAMPLES}; found {value!r}{hint}", field=where)
            h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s
        if text.startswith("-"):
            seconds = -seconds
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise PlanError(f"expected a finite duration {_DURATION_EXAMPLES}; found {value!r}", field=where)
    if seconds < 0:
        raise PlanError(f"a duration cannot be negative; found {value!r}", field=where)
    return seconds


def _format_s(seconds: float) -> str:
    """Seconds as ``1h30m``, ``2m5s``, ``45s`` or ``1.5s``."""
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


# -- reading nodes ---------------------------------------------------------------

class _Ctx:
    """The file being read, so that errors can name it."""

    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, node: yaml.Node | None, field: str | None, message: str) -> PlanError:
        line = node.start_mark.line + 1 if node is not None else None
        return PlanError(message, file=self.file, line=line, field=field or None)


def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null")


def _describe(node: yaml.Node) -> str:
    """What the user wrote, in words: 'a list', 'nothing', "'abc'", 'the number 5', 'yes (YAML reads ...)'."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.removeprefix(_TAG)
    if tag == "null":
        return "nothing"
    if tag == "bool":
        return f"{node.value} (YAML reads it as true/false)"
    if tag in ("int", "float"):
        return f"the number {node.value}"
    if tag == "timestamp":
        return f"{node.value} (YAML reads it as a date)"
    return repr(node.value)


def _mapping(ctx: _Ctx, node: yaml.Node, field: str, allowed: tuple[str, ...],
             required: tuple[str, ...] = (), *, what: str = "a mapping") -> dict[str, yaml.Node]:
    """The keys of a mapping node: unknown keys get a 'did you mean', missing required keys are named."""
    if not isinstance(node, yaml.MappingNode):
        raise ctx.error(node, field, f"expected {what} with keys {', '.join(allowed)}; found {_describe(node)}")
    explicit: list[tuple[yaml.Node, yaml.Node]] = []
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value in node.value:
        if key_node.tag == _TAG + "merge":  # `<<: *anchor` — keys written here win over merged ones
            for source in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if not isinstance(source, yaml.MappingNode):
                    raise ctx.error(source, field, f"'<<' merges a mapping (an &anchor); found {_describe(source)}")
                merged.extend((k, v) for k, v in source.value)
        else:
            explicit.append((key_node, value))
    out: dict[str, yaml.Node] = {}
    first_line: dict[str, int] = {}
    for key_node, value in explicit + merged:
        key = str(key_node.value)
        where = f"{field}.{key}" if field else key
        if not field and key.startswith("x-"):
            continue  # top-level x-… keys hold YAML anchors to share (as in docker-compose files)
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
            raise ctx.error(key_node, where, f"unknown key {key!r} ({hint})")
        if key in out:
            if (key_node, value) in merged:
                continue
            raise ctx.error(key_node, where, f"key given twice (first on line {first_line[key]})")
        out[key] = value
        first_line[key] = key_node.start_mark.line + 1
    for key in required:
        if key not in out:
            raise ctx.error(node, f"{field}.{key}" if field else key, "missing (required)")
    return out


def _list(ctx: _Ctx, node: yaml.Node, field: str, *, single_ok: bool = False) -> list[yaml.Node]:
    """The items of a list node; with `single_ok`, a single value counts as a list of one."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if single_ok and isinstance(node, yaml.ScalarNode) and not _is_null(node):
        return [node]
    raise ctx.error(node, field, f"expected a list; found {_describe(node)}")


def _text(ctx: _Ctx, node: yaml.Node, field: str, *, slug: bool = False) -> str:
    """Text as written (a plain `2025` stays "2025": names are not numbers)."""
    if not isinstance(node, yaml.ScalarNode) or _is_null(node) or not node.value.strip():
        raise ctx.error(node, field, f"expected text; found {_describe(node)}")
    value = node.value.strip()
    if slug and not _SLUG.fullmatch(value):
        raise ctx.error(node, field, f"expected a lowercase name of letters a-z, digits and '-' "
                                     f"(like 'full-trial'); found {value!r}")
    return value


def _number(ctx: _Ctx, node: yaml.Node, field: str, *, integer: bool = False, minimum: float | None = None,
            maximum: float | None = None, positive: bool = False, percent: bool = False,
            kind: str | None = None, why: str = "") -> float:
    """A plain decimal number, read from the text as written (YAML 1.1 would read 010 as 8 and 1_000 as 1000)."""
    kind = kind or ("a whole number" if integer else "a number")
    if not isinstance(node, yaml.ScalarNode) or _is_null(node):
        raise ctx.error(node, field, f"expected {kind}; found {_describe(node)}")
    raw = node.value.strip()
    if _SEPARATED.fullmatch(raw) and ("_" in raw or "," in raw):
        plain = raw.replace("_", "").replace(",", "")
        raise ctx.error(node, field, f"expected {kind} without separators: write {plain}, not {raw} "
                                     f"(YAML reads 1_000 as 1000 but 1,000 as text, so neither is allowed)")
    digits, scale = raw, 1
    if raw.endswith("%") and percent:
        digits, scale = raw[:-1].rstrip(), 100
    if not _DECIMAL.fullmatch(digits):
        hint = " (a percentage is only allowed for a share)" if raw.endswith("%") else ""
        raise ctx.error(node, field, f"expected {kind}; found {_describe(node)}{hint}")
    if node.style is not None:  # quoted or block text that happens to look like a number
        raise ctx.error(node, field, f"expected {kind}; found {raw!r}, which is quoted text (remove the quotes)")
    if integer and not _INTEGER.fullmatch(digits):
        raise ctx.error(node, field, f"expected {kind}; found {raw}")
    value: float = int(digits) if _INTEGER.fullmatch(digits) and scale == 1 else float(digits) / scale
    if not math.isfinite(value):
        raise ctx.error(node, field, f"expected {kind}; found {raw}")
    if positive and value <= 0:
        raise ctx.error(node, field, f"expected {kind} greater than 0{why}; found {raw}")
    if minimum is not None and value < minimum:
        raise ctx.error(node, field, f"expected {kind} of at least {minimum:g}{why}; found {raw}")
    if maximum is not None and value > maximum:
        raise ctx.error(node, field, f"expected {kind} of at most {maximum:g}{why}; found {raw}")
    return value


def _share(ctx: _Ctx, node: yaml.Node, field: str) -> float:
    return float(_number(ctx, node, field, minimum=0, maximum=1, percent=True,
                         kind="a share", why=" (shares run from 0 to 1, or 0% to 100%)"))


def _duration(ctx: _Ctx, node: yaml.Node, field: str, *, allow_zero: bool = False) -> float:
    if not isinstance(node, yaml.ScalarNode) or _is_null(node) or node.tag == _TAG + "bool":
        raise ctx.error(node, field, f"expected a duration {_DURATION_EXAMPLES}; found {_describe(node)}")
    text = node.value.strip()
    negative = text.startswith("-")  # a range mistake, not a bad string: read it unsigned first
    try:
        seconds = parse_duration(text[1:] if negative else text, where=field)
    except PlanError:
        hint = " (write 1h30m or 1m30s, not 1:30)" if ":" in text else ""
        raise ctx.error(node, field, f"expected a duration {_DURATION_EXAMPLES}; found {node.value!r}{hint}") from None
    if negative and seconds > 0:
        bound = "of at least 0" if allow_zero else "greater than 0"
        raise ctx.error(node, field, f"expected a duration {bound}; found {node.value!r}")
    if seconds == 0 and not allow_zero:
        raise ctx.error(node, field, f"expected a duration greater than 0; found {node.value!r}")
    return seconds


def _think_time(ctx: _Ctx, node: yaml.Node, field: str) -> ThinkTime:
    if isinstance(node, yaml.SequenceNode):
        if len(node.value) != 2:
            raise ctx.error(node, field, f"expected [low, high] (two durations) or one duration; "
                                         f"found a list of {len(node.value)}")
        low = _duration(ctx, node.value[0], f"{field}[0]", allow_zero=True)
        high = _duration(ctx, node.value[1], f"{field}[1]", allow_zero=True)
        if low > high:
            raise ctx.error(node, field, f"expected [low, high] with low ≤ high; found low {node.value[0].value} "
                                         f"> high {node.value[1].value}")
        return ThinkTime(low, high)
    seconds = _duration(ctx, node, field, allow_zero=True)
    return ThinkTime(seconds, seconds)


# -- the schema ------------------------------------------------------------------

_TOP_KEYS = ("name", "description", "target", "time_scale", "seed", "baseline", "gates", "stages")
_GATE_KEYS = ("name", "expr", "abort_on_fail", "abort_grace")
_STAGE_KEYS = ("name", "description", "units", "duration", "grace", "citizens", "officers", "gates", "faults",
               "cutover")
_UNIT_KEYS = ("former_province", "type", "codes", "exclude", "sample")
_CITIZEN_KEYS = ("users", "spawn_rate", "think_time", "other_unit_share", "attachment_kb", "follow_interval", "ramp",
                 "arrival_rate")
_FAULT_KEYS = ("kind", "name", "at", "for", "endpoints", "delay", "rate", "status", "factor", "units", "officers")
_CUTOVER_KEYS = ("at", "mode", "retry_after", "migrate")
#: Which keys each fault kind takes besides kind, name, at and for.
_FAULT_FIELDS = {"latency": ("endpoints", "delay"), "errors": ("endpoints", "rate", "status"), "outage": (),
                 "slow-agency": ("factor",), "silent-drop": ("rate",), "absence": ("units", "officers")}
_RATE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|sec|min|m|h|hour)\s*")
_OFFICER_KEYS = ("per_unit", "think_time", "poll_interval", "supplement_share", "refuse_share", "sign_in_lead")


def _choices(ctx: _Ctx, node: yaml.Node, field: str, label: str, allowed: list[str]) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_list(ctx, node, field, single_ok=True)):
        value = _text(ctx, item, f"{field}[{i}]")
        if value not in allowed:
            close = difflib.get_close_matches(value, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ctx.error(item, f"{field}[{i}]", f"unknown {label} {value!r} "
                                                   f"(expected one of: {', '.join(allowed)}){hint}")
        out.append(value)
    return tuple(out)


def _codes(ctx: _Ctx, node: yaml.Node, field: str,
           within: tuple[int, ...] | None = None) -> list[tuple[int, yaml.Node]]:
    known = units_by_code()
    out = []
    for i, item in enumerate(_list(ctx, node, field, single_ok=True)):
        code = int(_number(ctx, item, f"{field}[{i}]", integer=True, kind="a unit code"))
        if code not in known or (within is not None and code not in within):
            if code in known:
                raise ctx.error(item, f"{field}[{i}]", f"unit {code} does not take part in this stage "
                                                       f"(expected one of the stage's {len(within or ())} units)")
            raise ctx.error(item, f"{field}[{i}]", f"unknown unit code {code} (expected one of the {len(known)} "
                                                   f"codes of province {PROVINCE_CODE}; see 'rehearse wards')")
        out.append((code, item))
    return out


def _units(ctx: _Ctx, node: yaml.Node | None, field: str, *, seed: int, stage: str,
           within: tuple[int, ...] | None = None) -> tuple[tuple[int, ...], UnitSelection]:
    """The stage's unit codes: (filters AND-ed, or all) + codes - exclude, then a seeded sample.

    `within` limits the choice to those units (a fault's units are the stage's).
    """
    everyone = [u for u in load_units() if within is None or u.code in within]
    if _is_null(node):
        return tuple(u.code for u in everyone), UnitSelection()
    assert node is not None
    m = _mapping(ctx, node, field, _UNIT_KEYS)
    provinces = (_choices(ctx, m["former_province"], f"{field}.former_province", "former province",
                          [v.value for v in FormerProvince]) if "former_province" in m else ())
    types = (_choices(ctx, m["type"], f"{field}.type", "unit type", [v.value for v in UnitType])
             if "type" in m else ())
    codes = _codes(ctx, m["codes"], f"{field}.codes", within) if "codes" in m else []
    exclude = _codes(ctx, m["exclude"], f"{field}.exclude", within) if "exclude" in m else []
    added = {code for code, _ in codes}
    sample = (int(_number(ctx, m["sample"], f"{field}.sample", integer=True, positive=True))
              if "sample" in m else None)
    filtered = bool(provinces or types or not codes)  # only codes given: exactly those
    chosen = {u.code for u in everyone if filtered
              and (not provinces or u.former_province.value in provinces)
              and (not types or u.type.value in types)}
    chosen = (chosen | added) - {code for code, _ in exclude}
    if not chosen:
        raise ctx.error(node, field, "the selection picks no unit (expected at least one; the filters have no "
                                     "unit in common or exclude removes them all; see 'rehearse wards')")
    for i, (code, item) in enumerate(exclude):
        if code in added:
            raise ctx.error(item, f"{field}.exclude[{i}]", f"unit {code} is both in codes and in exclude "
                                                           f"(expected one or the other)")
    if sample is not None:
        if sample > len(chosen):
            raise ctx.error(m["sample"], f"{field}.sample", f"expected at most {len(chosen)} (the units the "
                                                            f"selection picks); found {sample}")
        # Seeded by plan seed and stage name: the same file always picks the same units in
        # every process, and editing one stage never reshuffles another.
        chosen = set(random.Random(f"{seed}:{stage}").sample(sorted(chosen), sample))
    selection = UnitSelection(former_provinces=provinces, types=types, codes=tuple(c for c, _ in codes),
                              exclude=tuple(c for c, _ in exclude), sample=sample)
    return tuple(sorted(chosen)), selection


def _citizens(ctx: _Ctx, node: yaml.Node, field: str) -> CitizenLoad:
    c = _mapping(ctx, node, field, _CITIZEN_KEYS, required=("users", "spawn_rate", "think_time"))
    users = int(_number(ctx, c["users"], f"{field}.users", integer=True, minimum=0, maximum=MAX_CITIZENS))
    spawn_rate = float(_number(ctx, c["spawn_rate"], f"{field}.spawn_rate", positive=True,
                               why=" (users started per wall-clock second)"))
    think_time = _think_time(ctx, c["think_time"], f"{field}.think_time")
    other = _share(ctx, c["other_unit_share"], f"{field}.other_unit_share") if "other_unit_share" in c else 0.1
    attachment_kb = CitizenLoad.attachment_kb
    if "attachment_kb" in c:
        where = f"{field}.attachment_kb"
        items = _list(ctx, c["attachment_kb"], where)
        if len(items) != 2:
            raise ctx.error(c["attachment_kb"], where, f"expected [low, high] in KiB; found a list of {len(items)}")
        lo, hi = (int(_number(ctx, item, f"{where}[{i}]", integer=True, minimum=0, maximum=MAX_ATTACHMENT_KB))
                  for i, item in enumerate(items))
        if lo > hi:
            raise ctx.error(c["attachment_kb"], where, f"expected [low, high] with low ≤ high; found {lo} > {hi}")
        attachment_kb = (lo, hi)
    follow = (_duration(ctx, c["follow_interval"], f"{field}.follow_interval")
              if "follow_interval" in c else CitizenLoad.follow_interval_s)
    ramp = _ramp(ctx, c["ramp"], f"{field}.ramp", users) if "ramp" in c else ()
    arrivals = _arrival_rate(ctx, c["arrival_rate"], f"{field}.arrival_rate") if "arrival_rate" in c else None
    if ramp and arrivals is not None:
        raise ctx.error(c["ramp"], f"{field}.ramp", "a ramp shapes a crowd (closed model) and arrival_rate is an "
                                                    "open model: expected one of them, not both")
    return CitizenLoad(users=users, spawn_rate=spawn_rate, think_time=think_time, other_unit_share=other,
                       attachment_kb=attachment_kb, follow_interval_s=follow, ramp=ramp,
                       arrival_rate_per_min=arrivals)


def _ramp(ctx: _Ctx, node: yaml.Node, field: str, users: int) -> tuple[RampStep, ...]:
    """``[{to: 600, over: 10m}, {hold: 1h}, {to: 0, over: 10m}]``; ``to`` at most ``users``."""
    steps = []
    items = _list(ctx, node, field)
    if not items:
        raise ctx.error(node, field, "expected at least one step like {to: 600, over: 10m} or {hold: 30m}")
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        m = _mapping(ctx, item, where, ("to", "over", "hold"), what="a step ({to: N, over: 10m} or {hold: 30m})")
        if "hold" in m:
            if len(m) != 1:
                raise ctx.error(item, where, "a hold step has only 'hold' (expected {hold: 30m})")
            steps.append(RampStep(None, _duration(ctx, m["hold"], f"{where}.hold")))
            continue
        if "to" not in m:
            raise ctx.error(item, f"{where}.to", "missing (required): expected {to: N, over: 10m} or {hold: 30m}")
        to = int(_number(ctx, m["to"], f"{where}.to", integer=True, minimum=0, maximum=users,
                         why=" (citizens.users is the most a ramp can reach)"))
        over = _duration(ctx, m["over"], f"{where}.over", allow_zero=True) if "over" in m else 0.0
        steps.append(RampStep(to, over))
    return tuple(steps)


def _arrival_rate(ctx: _Ctx, node: yaml.Node, field: str) -> float:
    """New citizens per simulated minute, from ``30/min``, ``2/s``, ``900/h`` or a number (per minute)."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "str":
        match = _RATE.fullmatch(node.value)
        if not match:
            raise ctx.error(node, field, f"expected arrivals like 30/min, 2/s or 900/h; found {node.value!r}")
        per = {"s": 60, "sec": 60, "min": 1, "m": 1, "h": 1 / 60, "hour": 1 / 60}[match.group(2)]
        value = float(match.group(1)) * per
        if value <= 0:
            raise ctx.error(node, field, f"expected arrivals greater than 0; found {node.value!r}")
        return value
    return float(_number(ctx, node, field, positive=True, why=" (new citizens per minute)"))


def _faults(ctx: _Ctx, node: yaml.Node | None, field: str, *, seed: int, stage: str, units: tuple[int, ...],
            total_s: float) -> tuple[StageFault, ...]:
    if _is_null(node):
        return ()
    assert node is not None
    out: list[StageFault] = []
    for i, item in enumerate(_list(ctx, node, field)):
        where = f"{field}[{i}]"
        m = _mapping(ctx, item, where, _FAULT_KEYS, required=("kind", "at"), what="a fault")
        kind = _text(ctx, m["kind"], f"{where}.kind")
        if kind not in FAULT_KINDS:
            close = difflib.get_close_matches(kind, FAULT_KINDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ctx.error(m["kind"], f"{where}.kind", f"unknown fault kind {kind!r} "
                                                        f"(expected one of: {', '.join(FAULT_KINDS)}){hint}")
        for key in m:
            if key not in ("kind", "name", "at", "for") and key not in _FAULT_FIELDS[kind]:
                takes = ", ".join(_FAULT_FIELDS[kind]) or "nothing more"
                raise ctx.error(m[key], f"{where}.{key}", f"a fault of kind {kind} does not take {key!r} "
                                                          f"(it takes kind, name, at, for and {takes})")
        at = _duration(ctx, m["at"], f"{where}.at", allow_zero=True)
        if at >= total_s:
            raise ctx.error(m["at"], f"{where}.at", f"expected a time inside the stage (before "
                                                    f"{_format_s(total_s)}); found {m['at'].value!r}")
        length = _duration(ctx, m["for"], f"{where}.for") if "for" in m else None
        name = _text(ctx, m["name"], f"{where}.name") if "name" in m else f"{kind}@{_format_s(at)}"
        extra: dict[str, object] = {}
        if "endpoints" in m:
            extra["endpoints"] = tuple(_text(ctx, e, f"{where}.endpoints[{j}]")
                                       for j, e in enumerate(_list(ctx, m["endpoints"], f"{where}.endpoints",
                                                                   single_ok=True)))
        if kind == "latency":
            if "delay" not in m:
                raise ctx.error(item, f"{where}.delay", "missing (required): expected a delay like 300ms or 2s, "
                                                        "[low, high] or {mean: 1s}")
            extra.update(_delay(ctx, m["delay"], f"{where}.delay"))
        if "rate" in m:
            extra["rate"] = _share(ctx, m["rate"], f"{where}.rate")
        if "status" in m:
            extra["status"] = int(_number(ctx, m["status"], f"{where}.status", integer=True, minimum=400,
                                          maximum=599, why=" (an HTTP error status)"))
        if "factor" in m:
            extra["factor"] = float(_number(ctx, m["factor"], f"{where}.factor", minimum=1, maximum=1000,
                                            why=" (times slower)"))
        if kind == "absence":
            extra["units"], _ = _units(ctx, m.get("units"), f"{where}.units", seed=seed, stage=f"{stage}:{name}",
                                       within=units)
            if "officers" in m:
                extra["officers"] = int(_number(ctx, m["officers"], f"{where}.officers", integer=True, minimum=1,
                                                maximum=MAX_OFFICERS_PER_UNIT, why=" officers away per unit"))
        out.append(StageFault(kind=kind, at_s=at, for_s=length, name=name, **extra))  # type: ignore[arg-type]
    return tuple(out)


def _delay(ctx: _Ctx, node: yaml.Node, field: str) -> dict[str, object]:
    """A latency fault's delay: ``2s``, ``300ms``, ``[100ms, 900ms]`` or ``{mean: 1s}`` (wall-clock)."""
    def seconds(n: yaml.Node, where: str) -> float:
        if isinstance(n, yaml.ScalarNode) and n.tag == _TAG + "str" and n.value.strip().endswith("ms"):
            digits = n.value.strip()[:-2].strip()
            if not _DECIMAL.fullmatch(digits) or float(digits) < 0:
                raise ctx.error(n, where, f"expected milliseconds like 300ms; found {n.value!r}")
            return float(digits) / 1000
        return _duration(ctx, n, where, allow_zero=True)

    if isinstance(node, yaml.MappingNode):
        m = _mapping(ctx, node, field, ("mean",), required=("mean",), what="an exponential delay")
        return {"mean_s": seconds(m["mean"], f"{field}.mean")}
    if isinstance(node, yaml.SequenceNode):
        if len(node.value) != 2:
            raise ctx.error(node, field, f"expected [low, high]; found a list of {len(node.value)}")
        low, high = (seconds(n, f"{field}[{j}]") for j, n in enumerate(node.value))
        if low > high:
            raise ctx.error(node, field, "expected [low, high] with low ≤ high")
        return {"delay_s": (low, high)}
    value = seconds(node, field)
    return {"delay_s": (value, value)}


def _cutover(ctx: _Ctx, node: yaml.Node | None, field: str, total_s: float) -> Cutover | None:
    if _is_null(node):
        return None
    assert node is not None
    m = _mapping(ctx, node, field, _CUTOVER_KEYS, required=("at",))
    at = _duration(ctx, m["at"], f"{field}.at", allow_zero=True)
    if at >= total_s:
        raise ctx.error(m["at"], f"{field}.at", f"expected a time inside the stage (before {_format_s(total_s)}); "
                                                f"found {m['at'].value!r}")
    mode = "503"
    if "mode" in m:
        mode = _text(ctx, m["mode"], f"{field}.mode")
        if mode not in ("503", "redirect"):
            raise ctx.error(m["mode"], f"{field}.mode", f"expected 503 or redirect; found {mode!r}")
    retry = _duration(ctx, m["retry_after"], f"{field}.retry_after", allow_zero=True) if "retry_after" in m else 60.0
    migrate = True
    if "migrate" in m:
        if m["migrate"].tag != _TAG + "bool":
            raise ctx.error(m["migrate"], f"{field}.migrate",
                            f"expected true or false; found {_describe(m['migrate'])}")
        migrate = m["migrate"].value.lower() in ("true", "yes", "on")
    return Cutover(at_s=at, mode=mode, retry_after_s=retry, migrate=migrate)


def _officers(ctx: _Ctx, node: yaml.Node | None, field: str) -> OfficerLoad:
    if _is_null(node):
        return OfficerLoad()
    assert node is not None
    o = _mapping(ctx, node, field, _OFFICER_KEYS)
    d = OfficerLoad()
    return OfficerLoad(
        per_unit=int(_number(ctx, o["per_unit"], f"{field}.per_unit", integer=True, minimum=0,
                             maximum=MAX_OFFICERS_PER_UNIT, why=" officers per unit")) if "per_unit" in o
        else d.per_unit,
        think_time=_think_time(ctx, o["think_time"], f"{field}.think_time") if "think_time" in o else d.think_time,
        poll_interval_s=_duration(ctx, o["poll_interval"], f"{field}.poll_interval") if "poll_interval" in o
        else d.poll_interval_s,
        supplement_share=_share(ctx, o["supplement_share"], f"{field}.supplement_share")
        if "supplement_share" in o else d.supplement_share,
        refuse_share=_share(ctx, o["refuse_share"], f"{field}.refuse_share") if "refuse_share" in o
        else d.refuse_share,
        sign_in_lead_s=_duration(ctx, o["sign_in_lead"], f"{field}.sign_in_lead", allow_zero=True)
        if "sign_in_lead" in o else d.sign_in_lead_s)


def _gate(ctx: _Ctx, node: yaml.Node, field: str) -> tuple[Gate, yaml.Node]:
    """One gate and the node of its expression (for the line of later errors); see `rehearsal.plan.gate_language`."""
    name, abort, grace = None, False, 0.0
    if isinstance(node, yaml.MappingNode):
        m = _mapping(ctx, node, field, _GATE_KEYS, required=("expr",), what="a gate mapping")
        name = _text(ctx, m["name"], f"{field}.name") if "name" in m else None
        if "abort_on_fail" in m:
            if m["abort_on_fail"].tag != _TAG + "bool":
                raise ctx.error(m["abort_on_fail"], f"{field}.abort_on_fail",
                                f"expected true or false; found {_describe(m['abort_on_fail'])}")
            abort = m["abort_on_fail"].value.lower() in ("true", "yes", "on")
        if "abort_grace" in m:
            if not abort:
                raise ctx.error(m["abort_grace"], f"{field}.abort_grace",
                                "abort_grace only applies with abort_on_fail: true")
            grace = _duration(ctx, m["abort_grace"], f"{field}.abort_grace", allow_zero=True)
        node, field = m["expr"], f"{field}.expr"
    if not isinstance(node, yaml.ScalarNode) or node.tag != _TAG + "str":
        raise ctx.error(node, field, f"expected a gate {_GATE_SHAPE}; found {_describe(node)}")
    try:
        gate = parse_gate(node.value, name=name, abort_on_fail=abort, abort_grace_s=grace)
    except GateSyntaxError as exc:
        raise ctx.error(node, field, str(exc)) from None
    unit = gate.filter("unit")
    if unit is not None and int(unit) not in units_by_code():
        raise ctx.error(node, field, f"unknown unit code {unit} in the gate's filter (expected one of the 168 codes "
                                     f"of province {PROVINCE_CODE}; see 'rehearse wards')")
    return gate, node


def _gates(ctx: _Ctx, node: yaml.Node | None, field: str) -> tuple[Gate, ...]:
    if _is_null(node):
        return ()
    assert node is not None
    gates: list[Gate] = []
    names: dict[str, int] = {}
    for i, item in enumerate(_list(ctx, node, field)):
        gate, expr_node = _gate(ctx, item, f"{field}[{i}]")
        if gate.name in names:
            raise ctx.error(item, f"{field}[{i}]", f"gate {gate.name!r} is given twice (first as "
                                                   f"{field}[{names[gate.name]}]; expected unique names)")
        names[gate.name] = i
        same = [g for g in gates if g.key == gate.key] + [gate]
        if not satisfiable(same):
            exprs = " and ".join(repr(g.expr) for g in same)
            # The line is the gate that made the set impossible; the field is the list, since the
            # mistake is in no single gate.
            raise ctx.error(expr_node, field, f"contradictory gates on {gate.key}: {exprs} cannot all pass")
        gates.append(gate)
    return tuple(gates)


def _stage(ctx: _Ctx, node: yaml.Node, field: str, *, seed: int, time_scale: float) -> Stage:
    m = _mapping(ctx, node, field, _STAGE_KEYS, required=("name", "duration", "citizens"))
    name = _text(ctx, m["name"], f"{field}.name", slug=True)
    description = _text(ctx, m["description"], f"{field}.description") if "description" in m else ""
    units, selection = _units(ctx, m.get("units"), f"{field}.units", seed=seed, stage=name)
    duration = _duration(ctx, m["duration"], f"{field}.duration")
    grace = _duration(ctx, m["grace"], f"{field}.grace", allow_zero=True) if "grace" in m else 0.0
    citizens = _citizens(ctx, m["citizens"], f"{field}.citizens")
    officers = _officers(ctx, m.get("officers"), f"{field}.officers")
    gates = _gates(ctx, m.get("gates"), f"{field}.gates")
    total_s = officers.sign_in_lead_s + duration + grace
    faults = _faults(ctx, m.get("faults"), f"{field}.faults", seed=seed, stage=name, units=units, total_s=total_s)
    cutover = _cutover(ctx, m.get("cutover"), f"{field}.cutover", total_s)
    if citizens.users == 0 and officers.per_unit == 0:
        raise ctx.error(node, field, "the stage has no users (citizens.users and officers.per_unit are both 0)")
    # Citizens are started at spawn_rate once the officers' lead is over (with no lead, officers
    # are started with them): a crowd that cannot all arrive inside the window is not the plan written.
    starting = citizens.users + (0 if officers.sign_in_lead_s else officers.per_unit * len(units))
    window = duration / time_scale
    if not citizens.ramp and starting / citizens.spawn_rate > window:
        raise ctx.error(_mapping(ctx, m["citizens"], f"{field}.citizens", _CITIZEN_KEYS)["spawn_rate"],
                        f"{field}.citizens.spawn_rate",
                        f"{starting} users at {citizens.spawn_rate:g} per second take "
                        f"{_format_s(starting / citizens.spawn_rate)} to start, longer than the "
                        f"{_format_s(window)} wall-clock filing window ({_format_s(duration)} at time scale "
                        f"x{time_scale:g}); raise spawn_rate or lower users")
    return Stage(name=name, description=description, units=units, unit_selection=selection,
                 duration_s=duration, grace_s=grace, citizens=citizens, officers=officers, gates=gates,
                 faults=faults, cutover=cutover)


def load_plan(path: str | Path, *, time_scale: float | None = None) -> Plan:
    """Read and validate a scenario file; `time_scale` overrides the file's. Raises `PlanError`."""
    file = str(path)
    ctx = _Ctx(file)
    try:
        # utf-8-sig: a file saved by an editor that writes a byte-order mark still reads.
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PlanError("no such file (expected a scenario YAML, e.g. scenarios/demo.yaml)", file=file) from None
    except UnicodeDecodeError as exc:
        raise PlanError(f"cannot read the file: not UTF-8 text (byte {exc.start})", file=file) from None
    except OSError as exc:
        raise PlanError(f"cannot read the file: {exc.strerror or exc}", file=file) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError(f"not valid YAML: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    if root is None:
        raise PlanError("the file is empty (expected a scenario with name and stages; see docs/scenarios.md)",
                        file=file)
    m = _mapping(ctx, root, "", _TOP_KEYS, required=("name", "stages"))
    name = _text(ctx, m["name"], "name", slug=True)
    description = _text(ctx, m["description"], "description") if "description" in m else ""
    target = _text(ctx, m["target"], "target") if "target" in m else "reference"
    scale = float(_number(ctx, m["time_scale"], "time_scale", positive=True)) if "time_scale" in m else 1.0
    if time_scale is not None:
        if isinstance(time_scale, bool) or not math.isfinite(time_scale) or time_scale <= 0:
            raise PlanError(f"expected a number greater than 0 (it overrides the file's time_scale); "
                            f"found {time_scale:g}", file=file, field="--time-scale")
        scale = float(time_scale)
    seed = int(_number(ctx, m["seed"], "seed", integer=True)) if "seed" in m else 1
    stage_nodes = _list(ctx, m["stages"], "stages")
    if not stage_nodes:
        raise ctx.error(m["stages"], "stages", "expected at least one stage; found an empty list")
    stages: list[Stage] = []
    first: dict[str, int] = {}
    for i, node in enumerate(stage_nodes):
        stage = _stage(ctx, node, f"stages[{i}]", seed=seed, time_scale=scale)
        if stage.name in first:
            name_node = _mapping(ctx, node, f"stages[{i}]", _STAGE_KEYS)["name"]
            raise ctx.error(name_node, f"stages[{i}].name", f"stage name {stage.name!r} is used twice (first by "
                                                            f"stages[{first[stage.name]}]; expected unique names)")
        first[stage.name] = i
        stages.append(stage)
    gates = _gates(ctx, m.get("gates"), "gates")
    if any(g.abort_on_fail for g in gates):
        bad = next(i for i, g in enumerate(gates) if g.abort_on_fail)
        raise ctx.error(_list(ctx, m["gates"], "gates")[bad], f"gates[{bad}].abort_on_fail",
                        "a gate on the whole run cannot abort a stage: put it under the stage's gates")
    baseline = _text(ctx, m["baseline"], "baseline") if "baseline" in m else None
    return Plan(name=name, description=description, target=target, time_scale=scale, seed=seed,
                stages=tuple(stages), source=Path(path).resolve(), file=file, gates=gates, baseline=baseline)


# -- what `rehearse validate` prints -----------------------------------------------

def describe_plan(plan: Plan) -> list[str]:
    """A few lines a person can check a plan by: stages, units, users, simulated and wall-clock times."""
    lines = [f"{plan.file or plan.source}: plan {plan.name!r}, {len(plan.stages)} stage(s), target {plan.target}, "
             f"time scale x{plan.time_scale:g}, seed {plan.seed}"]
    for s in plan.stages:
        lead = s.officers.sign_in_lead_s
        simulated = lead + s.duration_s + s.grace_s
        parts = (f"officers' lead {_format_s(lead)} + " if lead else "") + f"filing {_format_s(s.duration_s)}" \
            + (f" + grace {_format_s(s.grace_s)}" if s.grace_s else "")
        lines.append(f"  {s.name}: {len(s.units)} units, {s.officers.per_unit * len(s.units)} officers "
                     f"({s.officers.per_unit}/unit), {s.citizens.users} citizens; {parts} = "
                     f"{_format_s(simulated)} simulated, {_format_s(plan.wall_s(simulated))} wall-clock; "
                     f"{len(s.gates)} gate(s)"
                     + (f", {len(s.faults)} fault(s)" if s.faults else "")
                     + (f", cutover at {_format_s(s.cutover.at_s)}" if s.cutover else ""))
    return lines
