"""What goes into a CSV or XLSX cell that city staff open: nothing a spreadsheet runs.

Its own module, so that `mitreden ideas` and the process that makes files beside the
dashboard need nothing else to write a safe cell.
"""

# Control characters, which a file format or a reader may drop before a formula's "=".
_CONTROL = "".join(map(chr, range(32)))


def spreadsheet_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text starting with = + - @ (after any control
    characters, which a file format or a reader may drop), a tab or a carriage return gets a
    leading quote."""
    if isinstance(value, str) and (
        value[:1] in ("\t", "\r") or value.lstrip(_CONTROL)[:1] in ("=", "+", "-", "@")
    ):
        return "'" + value
    return value
