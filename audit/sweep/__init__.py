"""Many subjects — model folders, hub ids, or training recipes under several seeds — audited with one probe
configuration, as Ray tasks or in-process, with a leaderboard and seed-variance tests (``rai-audit sweep``).

spec.py (the sweep file), cells.py (cells, keys, running one), executors.py (local / Ray), ranks.py (rank
intervals), seeds.py (seed variance), leaderboard.py (the tables), run.py (the command's work).
"""
