"""The pure core: decisions as data, no I/O, the clock passed in."""
