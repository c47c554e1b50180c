"""``python -m edgeft`` is the ``edgeft`` command."""

from edgeft.cli import main

main()
