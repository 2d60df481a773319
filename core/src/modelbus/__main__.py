"""``python -m modelbus`` runs the CLI."""

from __future__ import annotations

from modelbus.cli import main

main()
