import sys

from avkit.cli.main import main

sys.exit(main())
