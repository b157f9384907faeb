"""sim layer of ilrs_robots."""
