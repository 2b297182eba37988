"""The phone-number domain: E.164, the number resource, purchase orders and imports."""
