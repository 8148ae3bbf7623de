"""The drgn adapter: the only package that imports drgn. Collectors take a
``drgn.Program`` and return kdebug's records; nothing here formats text."""
