import sys

from ftutils.cli import main

sys.exit(main())
