"""dsrctl: declarative configuration of Direct Server Return real servers."""

__version__ = "0.1.0"
