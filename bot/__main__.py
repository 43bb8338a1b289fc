"""`python -m bot` is the `addinbot` command."""

from bot.cli import main

raise SystemExit(main())
