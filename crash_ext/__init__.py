"""What runs inside crash (installed as ``kdebug.crash_ext``): command files
and the source of kdebug's crash extension. Read through :mod:`kdebug.resources`."""
