"""Windows planning: the [windows] spec table, model ids, steps, spec checks, import and the
planner."""
