"""Command-line commands; see dstlib.cli."""
