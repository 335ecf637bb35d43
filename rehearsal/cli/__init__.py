"""`rehearse`: the command line."""

from .commands import build_parser, main  # noqa: F401
