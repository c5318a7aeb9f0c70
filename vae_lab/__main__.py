"""`python -m vae_lab`: the command line. Ctrl-C while it is still importing torch ends it with one line."""
import sys

try:
    from .cli import main
except KeyboardInterrupt:
    print("interrupted while starting up, before any training: nothing was written, and any earlier run is unchanged",
          file=sys.stderr)
    sys.exit(130)  # as cli.EXIT_INTERRUPTED, which is not loaded yet

sys.exit(main())
