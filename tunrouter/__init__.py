"""tunrouter: an IPv4 router, firewall and NAT in one user-space process."""

__version__ = "0.1.0"
