"""nodes layer of ilrs_robots."""
