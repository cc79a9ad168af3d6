"""Host facts: what each host kind can expose to a guest and which bugs its silicon has,
derived from what the pool file and fact files state."""
