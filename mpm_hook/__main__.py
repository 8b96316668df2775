"""Entry point for the command install-hooks writes: ``python -I -S <dir>/mpm_hook/__main__.py``.

Run as a plain file (not ``python <dir>``, which would import runpy: ~6 ms, half the budget),
and ``-I`` keeps the script's folder off sys.path, so put the package's parent there
ourselves; ``mpm_hook`` then imports as a package, as the daemon and the tests import it.
"""

import sys

if not __package__:
    _here = __file__.rpartition("/")[0] or "."
    sys.path.insert(0, _here.rpartition("/")[0] or ("/" if _here.startswith("/") else "."))

from mpm_hook.hook import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
