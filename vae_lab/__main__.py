"""`python -m vae_lab`: the command line. Ctrl-C while it is still importing torch ends it with one line."""
import sys

try:
    from .cli import EXIT_INTERRUPTED, main
except KeyboardInterrupt:
    print("interrupted while starting up, before any training: nothing was written, and any earlier run is unchanged",
          file=sys.stderr)
    sys.exit(130)

sys.exit(main())
