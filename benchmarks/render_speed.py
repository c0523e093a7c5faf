"""Time rendering the HTML report for a results.json with every probe family present.

Acceptance (issue 3): ≤ 1 s and ≤ 3 MB. Usage: python benchmarks/render_speed.py [results.json]
Without an argument it renders the synthetic all-families results used by the report tests.
"""

import sys
import time
from pathlib import Path


def main() -> None:
    if len(sys.argv) > 1:
        from audit.results import load_results

        results = load_results(sys.argv[1])
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from synthetic_results import build_results

        results = build_results()
    from reports import render_html

    render_html(results)  # first call pays for imports and the template cache
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        html = render_html(results)
        timings.append(time.perf_counter() - started)
    print(f"probes: {len(results.probes)}  figures: {sum(len(p.figures) for p in results.probes)}")
    print(f"render time: median {sorted(timings)[2]:.3f} s (best {min(timings):.3f} s)")
    print(f"html size: {len(html.encode()) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
