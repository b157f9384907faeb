"""console layer of ilrs_robots."""
