"""``kdebug bisect``: find the commit that brought a crash, by its title.

Pure parts: :mod:`verdict` (a step's verdict from the titles its runs
showed), :mod:`record` (the evidence table and its formats), :mod:`gitargv`
(git's argv and the reading of its answers). Adapters: :mod:`git` (runs
git in a private worktree), :mod:`build` (the module build), :mod:`runs`
(one boot of the reproducer, decided from the console) and :mod:`drive`
(the bisection itself, its state file, resume and reset).
"""
