"""The data the tests share with other implementations, in `../shared` beside this checkout
(or $STAVE_SHARED): the audio fixture files, good and bad, listed when this is imported."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.paths import PROJECT_ROOT

SHARED = Path(os.environ.get("STAVE_SHARED", PROJECT_ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "audio"
AUDIO_FIXTURES = sorted(p for p in FIXTURES.iterdir() if p.is_file())
BAD_FIXTURES = sorted((FIXTURES / "bad").iterdir())
