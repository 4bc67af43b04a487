"""What a file looked like: its stat signature, the one tuple every part compares.

Size, modification time (ns) and inode: a save in place changes the size or the
mtime, a save by rename changes the inode. Content is compared elsewhere (the
engine hashes what it reads); the signature only says whether to look again.
"""

from __future__ import annotations

import os

__all__ = ["Signature", "file_signature", "signature_of"]

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
