"""Throwaway domains the tests register next to the real ones (no generic code edited)."""
