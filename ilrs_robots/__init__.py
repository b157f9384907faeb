"""ilrs_robots layer of ilrs_robots."""
