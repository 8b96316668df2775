"""mpm-hook: the command Claude Code runs for every hook event.

Everything in this package is imported on Claude Code's critical path, by an interpreter
started with ``-I -S``: it may import only modules that interpreter has already loaded
(``sys``, ``time``, ``_signal``, ``posix``) and the C module it needs (``_socket``).
``tests/test_hook_imports.py`` keeps it that way.
"""
