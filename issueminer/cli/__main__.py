"""`python -m issueminer.cli`: the same command as `issueminer`."""

from issueminer.cli.main import run

run()
