"""Support code for the test suite (not shipped)."""
