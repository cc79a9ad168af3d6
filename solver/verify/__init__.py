"""The independent checker: plain Python, no Z3; re-checks every answer before it is printed."""
