"""`python -m vae_lab`: the command line. Ctrl-C, SIGTERM or SIGHUP while it is still importing torch ends it with
one line."""
import signal
import sys

from .files import STOPPING_SIGNALS, Terminated, stop_like_ctrl_c

for number in STOPPING_SIGNALS:
    if number != signal.SIGINT:
        signal.signal(number, stop_like_ctrl_c)
try:
    from .cli import main
except KeyboardInterrupt as stop:
    terminated = isinstance(stop, Terminated)
    print(f"{f'stopped by {stop.args[0]}' if terminated else 'interrupted'} while starting up, before any training: "
          "nothing was written, and any earlier run is unchanged", file=sys.stderr)
    sys.exit(128 + (stop.signal if terminated else signal.SIGINT))  # as the CLI's exit codes, which are not loaded yet

sys.exit(main())
