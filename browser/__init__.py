"""lsmigrate."""
