"""Reading YAML nodes: each value of a scenario with its line, and one message per mistake.

The YAML is composed into nodes rather than loaded, so every value keeps its
line and its text as written: numbers are read from that text (YAML 1.1 would
read ``010`` as 8, ``1_000`` as 1000 and ``1:30`` as 90), and what YAML made
of a surprise (``yes`` a boolean, ``2025-06-22`` a date, ``"5"`` quoted text)
is named in the message. Every reader takes the `ReadContext` (for the file's
name), the node and the field path, and raises the `PlanError` that says
``file:line: field: what was expected; what was found``.
"""

from __future__ import annotations

import math
import re

import yaml

from ..errors import PlanError
from .model import ThinkTime
from .notation import DECIMAL, DURATION_EXAMPLES, INTEGER, did_you_mean, has_separators, parse_duration

#: The prefix of YAML's standard tags (``tag:yaml.org,2002:str``, ``...:bool``, ...).
TAG = "tag:yaml.org,2002:"
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")


class ReadContext:
    """The file being read, so that errors can name it."""

    def __init__(self, file: str) -> None:
        self.file = file

    def error(self, node: yaml.Node | None, field: str | None, message: str) -> PlanError:
        line = node.start_mark.line + 1 if node is not None else None
        return PlanError(message, file=self.file, line=line, field=field or None)


def is_null(node: yaml.Node | None) -> bool:
    """Whether a value is absent or written as nothing (``~``, ``null`` or an empty value)."""
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == TAG + "null")


def is_text(node: yaml.Node) -> bool:
    """Whether YAML reads the node as a string (not a number, a boolean, a date, a list...)."""
    return isinstance(node, yaml.ScalarNode) and node.tag == TAG + "str"


def describe_node(node: yaml.Node) -> str:
    """What the user wrote, in words: 'a list', 'nothing', "'abc'", 'the number 5', 'yes (YAML reads ...)'."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.removeprefix(TAG)
    if tag == "null":
        return "nothing"
    if tag == "bool":
        return f"{node.value} (YAML reads it as true/false)"
    if tag in ("int", "float"):
        return f"the number {node.value}"
    if tag == "timestamp":
        return f"{node.value} (YAML reads it as a date)"
    return repr(node.value)


def read_mapping(ctx: ReadContext, node: yaml.Node, field: str, allowed: tuple[str, ...],
                 required: tuple[str, ...] = (), *, what: str = "a mapping") -> dict[str, yaml.Node]:
    """The keys of a mapping node: unknown keys get a 'did you mean', missing required keys are named."""
    if not isinstance(node, yaml.MappingNode):
        raise ctx.error(node, field, f"expected {what} with keys {', '.join(allowed)}; found {describe_node(node)}")
    explicit: list[tuple[yaml.Node, yaml.Node]] = []
    merged: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value in node.value:
        if key_node.tag == TAG + "merge":  # `<<: *anchor` — keys written here win over merged ones
            for source in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if not isinstance(source, yaml.MappingNode):
                    raise ctx.error(source, field,
                                    f"'<<' merges a mapping (an &anchor); found {describe_node(source)}")
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
            raise ctx.error(key_node, where, f"unknown key {key!r} ({did_you_mean(key, allowed)})")
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


def read_list(ctx: ReadContext, node: yaml.Node, field: str, *, single_ok: bool = False) -> list[yaml.Node]:
    """The items of a list node; with `single_ok`, a single value counts as a list of one."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if single_ok and isinstance(node, yaml.ScalarNode) and not is_null(node):
        return [node]
    raise ctx.error(node, field, f"expected a list; found {describe_node(node)}")


def read_text(ctx: ReadContext, node: yaml.Node, field: str, *, slug: bool = False) -> str:
    """Text as written (a plain `2025` stays "2025": names are not numbers)."""
    if not isinstance(node, yaml.ScalarNode) or is_null(node) or not node.value.strip():
        raise ctx.error(node, field, f"expected text; found {describe_node(node)}")
    value = node.value.strip()
    if slug and not _SLUG.fullmatch(value):
        raise ctx.error(node, field, f"expected a lowercase name of letters a-z, digits and '-' "
                                     f"(like 'full-trial'); found {value!r}")
    return value


def read_number(ctx: ReadContext, node: yaml.Node, field: str, *, integer: bool = False,
                minimum: float | None = None, maximum: float | None = None, positive: bool = False,
                percent: bool = False, kind: str | None = None, why: str = "") -> float:
    """A plain decimal number, read from the text as written (YAML 1.1 would read 010 as 8 and 1_000 as 1000)."""
    kind = kind or ("a whole number" if integer else "a number")
    if not isinstance(node, yaml.ScalarNode) or is_null(node):
        raise ctx.error(node, field, f"expected {kind}; found {describe_node(node)}")
    raw = node.value.strip()
    if has_separators(raw):
        plain = raw.replace("_", "").replace(",", "")
        raise ctx.error(node, field, f"expected {kind} without separators: write {plain}, not {raw} "
                                     f"(YAML reads 1_000 as 1000 but 1,000 as text, so neither is allowed)")
    digits, scale = raw, 1
    if raw.endswith("%") and percent:
        digits, scale = raw[:-1].rstrip(), 100
    if not DECIMAL.fullmatch(digits):
        hint = " (a percentage is only allowed for a share)" if raw.endswith("%") else ""
        raise ctx.error(node, field, f"expected {kind}; found {describe_node(node)}{hint}")
    if node.style is not None:  # quoted or block text that happens to look like a number
        raise ctx.error(node, field, f"expected {kind}; found {raw!r}, which is quoted text (remove the quotes)")
    if integer and not INTEGER.fullmatch(digits):
        raise ctx.error(node, field, f"expected {kind}; found {raw}")
    value: float = int(digits) if INTEGER.fullmatch(digits) and scale == 1 else float(digits) / scale
    if not math.isfinite(value):
        raise ctx.error(node, field, f"expected {kind}; found {raw}")
    if positive and value <= 0:
        raise ctx.error(node, field, f"expected {kind} greater than 0{why}; found {raw}")
    if minimum is not None and value < minimum:
        raise ctx.error(node, field, f"expected {kind} of at least {minimum:g}{why}; found {raw}")
    if maximum is not None and value > maximum:
        raise ctx.error(node, field, f"expected {kind} of at most {maximum:g}{why}; found {raw}")
    return value


def read_share(ctx: ReadContext, node: yaml.Node, field: str) -> float:
    """A share from 0 to 1, or written as a percentage (``10%`` is 0.1)."""
    return float(read_number(ctx, node, field, minimum=0, maximum=1, percent=True,
                             kind="a share", why=" (shares run from 0 to 1, or 0% to 100%)"))


def read_bool(ctx: ReadContext, node: yaml.Node, field: str) -> bool:
    """``true`` or ``false`` (YAML 1.1's ``yes``/``no``/``on``/``off`` too: YAML reads them so)."""
    if node.tag != TAG + "bool":
        raise ctx.error(node, field, f"expected true or false; found {describe_node(node)}")
    return node.value.lower() in ("true", "yes", "on")


def read_duration(ctx: ReadContext, node: yaml.Node, field: str, *, allow_zero: bool = False) -> float:
    """Simulated seconds from a duration (``90s``, ``1h30m``, a plain number); > 0 unless `allow_zero`."""
    if not isinstance(node, yaml.ScalarNode) or is_null(node) or node.tag == TAG + "bool":
        raise ctx.error(node, field, f"expected a duration {DURATION_EXAMPLES}; found {describe_node(node)}")
    text = node.value.strip()
    negative = text.startswith("-")  # a range mistake, not a bad string: read it unsigned first
    try:
        seconds = parse_duration(text[1:] if negative else text, where=field)
    except PlanError:
        hint = " (write 1h30m or 1m30s, not 1:30)" if ":" in text else ""
        raise ctx.error(node, field,
                        f"expected a duration {DURATION_EXAMPLES}; found {node.value!r}{hint}") from None
    if negative and seconds > 0:
        bound = "of at least 0" if allow_zero else "greater than 0"
        raise ctx.error(node, field, f"expected a duration {bound}; found {node.value!r}")
    if seconds == 0 and not allow_zero:
        raise ctx.error(node, field, f"expected a duration greater than 0; found {node.value!r}")
    return seconds


def read_think_time(ctx: ReadContext, node: yaml.Node, field: str) -> ThinkTime:
    """``[low, high]`` (two durations, low ≤ high) or one duration for a fixed pause."""
    if isinstance(node, yaml.SequenceNode):
        if len(node.value) != 2:
            raise ctx.error(node, field, f"expected [low, high] (two durations) or one duration; "
                                         f"found a list of {len(node.value)}")
        low = read_duration(ctx, node.value[0], f"{field}[0]", allow_zero=True)
        high = read_duration(ctx, node.value[1], f"{field}[1]", allow_zero=True)
        if low > high:
            raise ctx.error(node, field, f"expected [low, high] with low ≤ high; found low {node.value[0].value} "
                                         f"> high {node.value[1].value}")
        return ThinkTime(low, high)
    seconds = read_duration(ctx, node, field, allow_zero=True)
    return ThinkTime(seconds, seconds)

