"""Pure metric and drift computations: no I/O, no frameworks (a test enforces it)."""
