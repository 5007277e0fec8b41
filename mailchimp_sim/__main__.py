"""``python -m mailchimp_sim``: see :func:`mailchimp_sim.server.main`."""

import sys

from .server import main

sys.exit(main())
