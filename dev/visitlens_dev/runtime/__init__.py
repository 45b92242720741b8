"""Function declarations (triggers) and the one-machine runner that serves them."""
