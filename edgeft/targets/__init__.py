"""Hardware targets: what the host has, and (in ``targets/``) profiles of the boxes we deploy to."""

from edgeft.targets.host import Host, this_host

__all__ = ["Host", "this_host"]
