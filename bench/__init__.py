"""The side-by-side benchmark: `make bench` (see README, Performance)."""
