"""mpmd: watch, keep and control what Claude Code does on this machine."""

__version__ = "0.1.0"
