"""protocols layer of ilrs_robots."""
