"""`python -m rehearsal.portal …` is `rehearse portal …`."""

import sys

from .cli import main

sys.exit(main())
