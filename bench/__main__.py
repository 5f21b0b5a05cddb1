"""``python -m bench``: run every workload on every system and print one table."""

from bench.harness import main

raise SystemExit(main())
