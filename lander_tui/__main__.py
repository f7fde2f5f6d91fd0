"""`python -m lander_tui` runs the same entry point as the `lander-tui` script."""

from lander_tui.cli import main

raise SystemExit(main())
