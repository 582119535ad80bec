"""``avkit info``: placeholder replaced by the io work."""
