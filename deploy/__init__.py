"""s2r deploy stage."""
