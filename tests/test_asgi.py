"""The ASGI entry point as daphne loads it: in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_what_start_up_loaded_is_kept_out_of_full_garbage_collections():
    # Full collections pause the event loop for what they walk (chatsite/asgi.py has the
    # figures). The URLconf, else imported on first use, is loaded and frozen too.
    script = (
        "import gc, sys; import chatsite.asgi; "
        "print(gc.get_freeze_count(), 'chatsite.urls' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    frozen, urls_loaded = done.stdout.split()
    assert int(frozen) > 20_000
    assert urls_loaded == "True"
