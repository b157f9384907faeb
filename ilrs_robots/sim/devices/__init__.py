"""devices layer of ilrs_robots."""
