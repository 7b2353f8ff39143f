"""The pure packet path: no file descriptors, no clock, no namespaces."""
