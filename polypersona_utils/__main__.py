"""`python -m polypersona_utils <command>`: the study's command line (`cli.py`)."""
import sys

from .cli import main

sys.exit(main())
