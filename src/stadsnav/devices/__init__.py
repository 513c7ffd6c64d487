"""The device registry: every device of the city, what it is for, who uses it, where it stands."""
