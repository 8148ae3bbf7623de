"""What runs inside gdb (installed as ``kdebug.gdb_scripts``): the loader
``kdebug_gdb.py`` and the kd- commands in :mod:`kdebug.gdb_scripts.kdgdb`."""
