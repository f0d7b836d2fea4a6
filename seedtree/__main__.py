import sys

from seedtree.cli import main

sys.exit(main())
