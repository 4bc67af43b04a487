"""What a file looked like: its stat signature, the one tuple every part compares.

Size, modification time (ns) and inode: a save in place changes the size or the
mtime, a save by rename changes the inode. Content is compared elsewhere (the
engine hashes what it reads); the signature only says whether to look again.
"""

from __future__ import annotations

import os

__all__ = ["RACY_SECONDS", "Signature", "file_signature", "mtime_blur", "signature_of"]

#: Files modified less than this long before they were read are always re-hashed: a
#: save within the mtime tick of the read may carry the same mtime and size (git's
#: "racy clean").
RACY_SECONDS = 2.0


def mtime_blur(mtime_ns: int) -> float:
    """Seconds by which a file's mtime may precede the write that set it. File
    timestamps come from a coarse clock, a kernel tick (a few ms) behind
    ``time.time()``, or whole seconds (two on FAT) where a filesystem keeps no
    fraction: a write just after a moment can carry an mtime just before it."""
    return 2.0 if mtime_ns % 1_000_000_000 == 0 else 0.05


#: (size, mtime_ns, inode)
Signature = tuple[int, int, int]


def signature_of(st: os.stat_result) -> Signature:
    """The signature of a file from its ``os.stat`` result."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def file_signature(path: str | os.PathLike[str]) -> Signature | None:
    """The signature of the file at ``path``; None when it does not exist (or
    cannot be looked at)."""
    try:
        return signature_of(os.stat(path))
    except OSError:
        return None
