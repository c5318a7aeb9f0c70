"""What only the notebooks use: their setup, exercises and checks, reference solutions, and per-lesson figures."""
