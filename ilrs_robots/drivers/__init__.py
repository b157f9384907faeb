"""drivers layer of ilrs_robots."""
