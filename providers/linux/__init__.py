"""The Linux provider: addresses through netlink (pyroute2), sysctls through /proc/sys,
persistent files written atomically."""
