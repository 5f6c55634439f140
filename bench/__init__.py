"""ChatAPI benchmark harness: `python -m bench --help`."""
