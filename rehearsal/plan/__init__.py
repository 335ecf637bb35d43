"""The plan room: a scenario YAML read once, validated, and returned as typed frozen dataclasses."""

from .schema import *  # noqa: F401,F403
from .schema import load_plan, describe_plan, parse_duration  # noqa: F401
