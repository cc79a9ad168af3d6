"""What must hold for a domain's guest CPU and what is preferred, as plain data (no Z3)."""
