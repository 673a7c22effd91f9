"""Resource kinds: one module per kind, listed once in ``dsrctl.kinds.registry``.

A kind (``dsrctl.kinds.base.ResourceKind``) is everything dsrctl knows about one sort of
resource: its id prefix and step class, its entries in the desired state and their way
back, how its value is taken from the host state and compared, and the phase and note of
its step. The diff, the way back, the read scope and the journal go through the registry.
"""
