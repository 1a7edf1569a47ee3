"""Local real-backend stack (mas-devstack)."""
