"""``python -I -S tests/fakes/claude/__main__.py ARGS`` runs the fake claude (see the package
docstring); so does ``python -I -S tests/fakes/claude ARGS``, a little slower (through runpy).

The folder's parent goes first on sys.path, so the package imports as ``claude``, with nothing of
``tests`` (whose ``__init__`` modules would cost start-up time) and no site-packages.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from claude.main import entry  # type: ignore[import-not-found]

entry()
