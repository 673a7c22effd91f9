"""Host readers and writers, one package per platform.

A provider turns the host into canonical data (``providers.model``) and carries out steps.
Which provider serves a platform is named by dsrctl's platform records
(``dsrctl.platforms``); a provider's modules are imported only when its platform is used,
so a command never pays for another platform's imports.
"""

from providers.base import Provider

__all__ = ["Provider"]
