"""Data sets: readers of distributed layouts, CSV tables, splits and synthetic data."""
