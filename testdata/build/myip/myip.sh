#!/bin/sh
# Prints the IPv4 address of an interface (default: lo).
ip -4 -o addr show "${1:-lo}" | awk '{ split($4, a, "/"); print a[1] }'
