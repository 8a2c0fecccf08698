"""Bronze: landing files into Delta, every record exactly once, raw."""
