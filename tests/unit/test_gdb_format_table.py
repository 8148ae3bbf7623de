"""kdebug.format's fast plain table is tabulate's "plain" output, byte for byte."""

import random
import string

from tabulate import tabulate

from kdebug.format import _table


def test_fast_table_equals_tabulate():
    rnd = random.Random(7)
    alphabet = string.ascii_letters + string.digits + " /-[]:_.()"
    for _ in range(400):
        ncols = rnd.randint(1, 7)
        headers = ["".join(rnd.choice(string.ascii_uppercase) for _ in range(rnd.randint(1, 8)))
                   for _ in range(ncols)]
        rows = [[rnd.choice([rnd.randint(0, 10**6), hex(rnd.getrandbits(64)), "-", "",
                             "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 18)))])
                 for _ in range(ncols)] for _ in range(rnd.randint(0, 12))]
        assert _table(rows, headers) == tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)


def test_non_ascii_falls_back_to_tabulate():
    rows = [["ünïcode", 1], ["tab\there", 2]]
    assert _table(rows, ["A", "B"]) == tabulate(rows, headers=["A", "B"], tablefmt="plain", disable_numparse=True)
