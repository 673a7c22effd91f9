"""dsrctl: declarative configuration of Direct Server Return real servers."""

__version__ = "0.1.0"

# Where the spec lives unless a command is given another (CLI default, timer units).
DEFAULT_SPEC_PATH = "/etc/dsrctl/dsrctl.toml"
