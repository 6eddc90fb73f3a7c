"""The `menjin` command line: one entry point whose groups load only what they need."""
