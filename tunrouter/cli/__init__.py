"""The command line: argparse in, calls into the driver or the control socket, text out."""
