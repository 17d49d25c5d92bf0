"""Custom integrations shipped by countis-bridge."""
