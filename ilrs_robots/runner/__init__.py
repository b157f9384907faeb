"""runner layer of ilrs_robots."""
