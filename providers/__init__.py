"""Host readers and writers, one package per platform.

A provider turns the host into canonical data (``providers.model``) and carries out steps.
The registry is a plain dict from platform name to a factory; modules are imported only
when their platform is used, so a command never pays for another platform's imports.
"""

from providers.base import Provider, get_provider, platform_names

__all__ = ["Provider", "get_provider", "platform_names"]
