"""Small framework-free utilities shared by the CLIs and libraries."""
