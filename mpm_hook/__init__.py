"""mpm-hook: the command Claude Code runs for every hook event.

Everything in this package is imported on Claude Code's critical path, by an interpreter
started with ``-I -S``: it may import only modules that interpreter has already loaded
(``sys``, ``time``, ``_signal``, ``posix``, ``marshal``) and the C modules it needs
(``_socket``; ``_json`` for a PreToolUse or PermissionRequest event when a policy exists).
Two exceptions, off the usual path: ``re`` when a policy rule with a regular expression is
reached, and mpm_hook.policy_compile (``tomllib``) when policy.toml changed since it was
compiled. tests/test_hook.py keeps it that way.
"""
