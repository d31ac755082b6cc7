"""Small files read from paths a user or a file gave: regular files only, and bounded.

A path may name /dev/zero (endless), a named pipe (opening it waits for a writer) or a device;
``os.stat`` reports size 0 for all of them, so a size check before reading bounds nothing.
``read_small`` opens without waiting (O_NONBLOCK), asks the open descriptor what it is, and
reads at most one byte more than the limit, so that a larger file is refused unread.
"""
import os
import stat

_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "named pipe"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket"))


class NotARegularFile(ValueError):
    """The path names something other than a regular file (the message says what)."""


class FileTooLarge(ValueError):
    """The file holds more bytes than the reader's limit."""


def kind_of(mode):
    """'directory', 'named pipe', ... for a stat mode; 'special file' for any other."""
    return next((name for test, name in _KINDS if test(mode)), "special file")


def read_small(path, limit, what="file"):
    """The bytes of the regular file ``path``, at most ``limit`` of them; NotARegularFile,
    FileTooLarge (both ValueError, naming the path and what to do) or the OSError of the open."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"{what} {path} is a {kind_of(mode)}, not a regular file; "
                                  "give the path of a file")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise FileTooLarge(f"{what} {path} is larger than {limit:,} bytes; at most {limit:,} are "
                       "read")
    return data
