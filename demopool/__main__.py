import sys

from demopool.pool import main

sys.exit(main() or 0)
