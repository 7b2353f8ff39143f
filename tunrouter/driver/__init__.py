"""The I/O shell: the only code that touches file descriptors, clocks and namespaces."""
