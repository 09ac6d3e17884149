"""actord: a container supervisor built from pykka actors.

Importing this package is cheap on purpose: the shim imports `actors.wire` (and nothing
else of actors) and must not pay for pykka or click.
"""

__version__ = "0.1.0"
