"""s2r policies stage."""
