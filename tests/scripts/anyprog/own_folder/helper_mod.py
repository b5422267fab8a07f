"""A module of the program's own folder: found there, never in mpdash's."""
VALUE = 7


def triple(x):
    return 3 * x
