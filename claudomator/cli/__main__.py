"""`python -m claudomator.cli`."""

from __future__ import annotations

from claudomator.cli import main

main()
