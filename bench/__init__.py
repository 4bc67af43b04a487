"""hotmod's benchmarks (``python -m bench``; see bench/README.md).

``tests/support.py`` is the one home of the helpers the tests and the bench share
(waits, an app served on a thread, module versions as files): every bench module
imports it as ``support``, from the folder put last on ``sys.path`` here, before
any of them runs, so that it shadows nothing. The tests never import the bench.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
