"""core layer of ilrs_robots."""
