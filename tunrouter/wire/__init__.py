"""Bytes <-> fields.  No state, no I/O: offsets, struct codecs and checksums."""
