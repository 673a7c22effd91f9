"""The Windows provider: netsh (and devcon) through a command runner, parsed by key and
column header, English output only. See docs/windows.md."""
