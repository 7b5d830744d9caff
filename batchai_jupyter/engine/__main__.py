"""`python -m batchai_jupyter.engine serve --workspace PATH`."""
import sys

from .loop import main

sys.exit(main())
