"""Run the program as ``python -m gtmhub_async.cli``."""

from gtmhub_async.cli import main

main()
