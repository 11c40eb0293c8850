"""kopf handlers: gather, decide (core), act (clouds)."""
