"""The real Claude Code CLI as a test client: a scripted stand-in for the Messages API
(``api``) and the harness that runs the pinned CLI against it in isolation (``client``)."""
