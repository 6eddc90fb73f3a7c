"""Gate hardware behind small interfaces, plus simulators that behave like it at real tty paths."""
