import sys

from avkit.cli.main import cli

sys.exit(cli())
