"""`python -m assistant ...` runs the command line, as the `assistant` script does."""

import sys

from assistant.interfaces.cli import main

sys.exit(main())
