"""The `wellsense` command line: a thin dispatcher over the role packages."""
