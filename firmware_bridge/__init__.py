"""s2r firmware_bridge stage."""
