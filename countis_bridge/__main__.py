"""``python -m countis_bridge`` runs the CLI."""

import sys

from countis_bridge.cli import main

sys.exit(main())
